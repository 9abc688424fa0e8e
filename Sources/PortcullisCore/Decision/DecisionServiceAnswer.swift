/// What the decision service answers an edge proxy for one decision (contract §11), computed
/// from the ``Decision`` alone, so the listener sends, and `check --listener decisions` and
/// `test` show, one and the same answer.
///
/// Edge proxies read 2xx as "allow", 401 and 403 as "deny", and anything else as a failure of
/// the auth service, so every other refusal goes out as 403 and names its own status in
/// ``Policy/portcullisStatusHeader``.
package struct DecisionServiceAnswer: Sendable {
    package var status: Int
    /// Every field of the answer besides its framing (`Content-Type` and `Content-Length`).
    package var headers: [(name: String, value: String)]
    /// Empty for an allowed request; a refusal's JSON body otherwise.
    package var body: [UInt8]
    /// For the access log and metrics: `allow`, `deny` or `would_deny`.
    package var outcome: DecisionLabel
    /// The status the policy decided: a refusal's own (404, 405, 400, 429…) when it is sent as
    /// 403, the refusal shadow mode did not enforce, 204 for a preflight; else ``status``.
    package var decidedStatus: Int
    /// The refusal's reason (`missing_credentials`, `no_route`…); `nil` for a plain allow.
    package var reason: Reason?
    package var routeName: String?
    package var subject: String?

    /// 403 `{"detail":"Forbidden"}` to a peer that may not ask: nothing is decided.
    package static func forbidden(reason: Reason) -> DecisionServiceAnswer {
        DecisionServiceAnswer(
            status: 403, headers: [], body: Array(JSONText.object([("detail", "Forbidden")]).utf8), outcome: .deny,
            decidedStatus: 403, reason: reason, routeName: nil, subject: nil)
    }
}

extension Policy {
    /// The header that names the status a refusal sent as 403 really has.
    package static let portcullisStatusHeader = "X-Portcullis-Status"
    /// The header that names the route an allowed request matched.
    package static let portcullisRouteHeader = "X-Portcullis-Route"

    /// The identity headers the decision service answers for `identity`: every one, empty when
    /// the request is anonymous or a claim is absent (``ServerConfig/appendIdentityFields(_:includingEmpty:to:)``).
    package func identityHeaders(for identity: Identity?) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(6 + self.config.server.claimHeaders.count)
        self.config.server.appendIdentityFields(identity, includingEmpty: true, to: &fields)
        return fields
    }

    /// The decision service's answer to `decision`.
    /// - Parameter requestID: the request's id (``RequestFacts/requestID``), answered back.
    package func decisionServiceAnswer(_ decision: Decision, requestID: String) -> DecisionServiceAnswer {
        switch decision {
        case .forward(let plan):
            // Shadow mode: a would-deny is answered as an allow; its identity is that of the
            // valid credentials it had, if any, as on a forward.
            var headers = self.identityHeaders(for: plan.identity)
            headers.append((Self.portcullisRouteHeader, plan.routeName))
            headers.append(("X-Request-Id", requestID))
            headers += plan.responseHeaders
            return DecisionServiceAnswer(
                status: 200, headers: headers, body: [], outcome: plan.shadowed == nil ? .allow : .wouldDeny,
                decidedStatus: plan.shadowed?.status ?? 200, reason: plan.shadowed?.reason, routeName: plan.routeName,
                subject: plan.identity?.subject)
        case .serve(.preflight(let route, let corsHeaders)):
            // A preflight carries no credentials: no identity, only what the browser needs.
            let headers = corsHeaders + [(Self.portcullisRouteHeader, route), ("X-Request-Id", requestID)]
            return DecisionServiceAnswer(
                status: 200, headers: headers, body: [], outcome: .allow, decidedStatus: 204, reason: .corsPreflight,
                routeName: route, subject: nil)
        case .refuse(let refusal):
            return Self.refusalAnswer(refusal, requestID: requestID)
        case .serve(.tokenEndpoint), .serve(.tokenRevocation), .serve(.document):
            // Never decided on the decision listener (see ``Policy/decide(_:now:recorder:)``).
            return Self.refusalAnswer(Refusal(status: 404, detail: "Not Found", reason: .notServedHere), requestID: requestID)
        case .verify:
            return Self.refusalAnswer(
                Refusal(status: 500, detail: "Internal Server Error", reason: .credentialLoop), requestID: requestID)
        }
    }

    private static func refusalAnswer(_ refusal: Refusal, requestID: String) -> DecisionServiceAnswer {
        var headers = refusal.headers
        var status = refusal.status
        if status != 401 && status != 403 {
            status = 403
            headers.append((Self.portcullisStatusHeader, String(refusal.status)))
        }
        headers.append(("X-Request-Id", requestID))
        return DecisionServiceAnswer(
            status: status, headers: headers, body: refusal.body, outcome: .deny, decidedStatus: refusal.status,
            reason: refusal.reason, routeName: refusal.routeName, subject: nil)
    }
}
