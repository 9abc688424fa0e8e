import PortcullisCrypto

/// The rules a route sets on a verified token beyond its scopes (contract §10): the issuers it
/// accepts, roles, claim conditions, and the claims forwarded as headers.
extension Policy {
    /// A token that verified (or that `--claims` assumes): the route's issuers, then the claims
    /// it forwards, then its scopes, roles and conditions.
    func admit<R: DecisionRecorder>(
        _ token: VerifiedToken, _ route: CompiledRoute, target: RequestTarget, request: RequestFacts,
        recorder: inout R
    ) -> Decision {
        if !route.config.issuers.isEmpty && !route.config.issuers.contains(token.issuer) {
            return self.tokenRefusal(.issuerNotAccepted, route, recorder: &recorder)
        }
        var claimHeaders: [ClaimHeaderValue] = []
        for header in self.config.server.claimHeaders {
            guard let value = header.path.lookup(token.claims) else { continue }
            // A claim that cannot travel undamaged (an object, a control character, a line
            // separator, a comma inside an array element) is never forwarded, nor dropped.
            guard let text = ClaimReading.headerText(value) else {
                return self.tokenRefusal(.badClaimHeader(header.path.description), route, recorder: &recorder)
            }
            claimHeaders.append(ClaimHeaderValue(name: header.name, value: text))
        }
        let identity = Identity(
            subject: token.subject, scopes: token.scopes, method: .bearer, roles: token.roles, claimHeaders: claimHeaders)
        return self.grant(identity, claims: token.claims, route, target: target, request: request, recorder: &recorder)
    }

    /// What a credential lacks of `all` (each of them) and `any` (one of them, listed whole
    /// when none is held): empty when it holds what the rule asks.
    static func missing(all: [String], any: [String], held: [String]) -> [String] {
        let missing = all.filter { !held.contains($0) }
        return !any.isEmpty && !any.contains(where: held.contains) ? missing + any : missing
    }

    /// 401 invalid_token for `rejection`, with the route's other challenges.
    func tokenRefusal<R: DecisionRecorder>(_ rejection: TokenRejection, _ route: CompiledRoute, recorder: inout R) -> Decision {
        recorder.record(.tokenRejected(rejection))
        var refusal = Challenge.refusal(
            .invalidToken, realm: self.config.server.realm, description: rejection.errorDescription,
            otherChallenges: route.otherChallenges, reason: rejection.reasonID)
        if case .unknownKeyID(_, let issuer) = rejection {
            refusal.keySetToRefresh = self.verifier.remoteKeySets[issuer]
        }
        return .refuse(refusal)
    }

    /// Whether the route's roles and claim conditions hold, each one recorded. `claims` is
    /// `nil` for Basic and API-key credentials, which have neither roles nor claims.
    func tokenRulesHold<R: DecisionRecorder>(
        _ config: RouteConfig, identity: Identity, claims: JSONValue?, recorder: inout R
    ) -> Bool {
        var holds = true
        if !config.roles.isEmpty || !config.rolesAny.isEmpty {
            let missing = Self.missing(all: config.roles, any: config.rolesAny, held: identity.roles)
            recorder.record(.roles(required: config.roles, requiredAny: config.rolesAny, granted: identity.roles, missing: missing))
            holds = missing.isEmpty
        }
        let payload = claims ?? .object([:])
        for condition in config.claims {
            let held = condition.holds(payload)
            recorder.record(.claimCondition(condition, held: held, actual: condition.path.lookup(payload)?.serialized))
            if !held { holds = false }
        }
        return holds
    }
}

/// Why the dry run cannot take claims as a token's.
package struct AssumedIssuerError: Error, Sendable {
    package var text: String
}

extension Policy {
    /// The issuer claims given to the dry run (`check --claims`, a case's `claims:`) are taken
    /// to come from: the one named, or the only configured one.
    package func assumedIssuer(_ named: String?) -> Result<String, AssumedIssuerError> {
        let names = self.config.jwt.issuers.map(\.issuer)
        if let named {
            guard names.contains(named) else {
                return .failure(AssumedIssuerError(text: "the issuer '\(named)' is not configured (jwt.issuers: \(names.joined(separator: ", ")))"))
            }
            return .success(named)
        }
        guard names.count == 1, let only = names.first else {
            return .failure(AssumedIssuerError(text: names.isEmpty
                ? "claims need an issuer, and none is configured under jwt.issuers"
                : "several issuers are configured: name the one the claims come from (\(names.joined(separator: ", ")))"))
        }
        return .success(only)
    }
}

/// CORS on routes that set `cors` (contract §10): preflights answered before authentication,
/// and the allow headers on every answer for a listed origin.
extension Policy {
    /// The request's `Origin`, if it sent exactly one.
    static func origin(_ request: RequestFacts) -> String? {
        var found: String?
        for (name, value) in request.fields where name.equalsIgnoringASCIICase("origin") {
            if found != nil { return nil }
            found = value.trimmingSpaces()
        }
        return found
    }

    /// Whether the request is a CORS preflight: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method` (anything else is an ordinary request).
    static func isPreflight(_ request: RequestFacts) -> Bool {
        request.method == "OPTIONS" && Self.origin(request) != nil
            && request.fields.contains { $0.name.equalsIgnoringASCIICase("access-control-request-method") }
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) on a route with `cors`; `nil` for any other request.
    func preflight<R: DecisionRecorder>(_ route: CompiledRoute, request: RequestFacts, recorder: inout R) -> Decision? {
        guard let cors = route.config.cors, request.method == "OPTIONS", let origin = Self.origin(request),
            let wanted = request.fields.first(where: { $0.name.equalsIgnoringASCIICase("access-control-request-method") })?
                .value.trimmingSpaces()
        else { return nil }
        recorder.record(.matched(route: route.config.name, location: route.config.location))
        guard let allowOrigin = cors.allowOrigin(for: origin), cors.allowMethods.contains(wanted) else {
            recorder.record(.preflight(origin: origin, allowed: false))
            var refusal = Refusal(status: 403, headers: [("Vary", "Origin")], detail: "CORS preflight refused", reason: .corsRefused)
            refusal.routeName = route.config.name
            return .refuse(refusal)
        }
        recorder.record(.preflight(origin: origin, allowed: true))
        var headers: [(name: String, value: String)] = [
            ("Access-Control-Allow-Origin", allowOrigin),
            ("Access-Control-Allow-Methods", cors.allowMethods.joined(separator: ", ")),
        ]
        if !cors.allowHeaders.isEmpty {
            headers.append(("Access-Control-Allow-Headers", cors.allowHeaders.joined(separator: ", ")))
        }
        if let maxAge = cors.maxAge { headers.append(("Access-Control-Max-Age", String(maxAge / 1000))) }
        headers.append(("Vary", "Origin"))
        return .serve(.preflight(route: route.config.name, headers: headers))
    }

    /// `decision` with `Access-Control-Allow-Origin` and `Vary: Origin` when the request's
    /// origin is one the route's `cors` lists: refusals too, so a browser can read a 401.
    func withCORS(_ decision: consuming Decision, _ route: CompiledRoute, request: RequestFacts) -> Decision {
        guard let cors = route.config.cors, let origin = Self.origin(request), let allow = cors.allowOrigin(for: origin) else {
            return decision
        }
        let headers: [(name: String, value: String)] = [("Access-Control-Allow-Origin", allow), ("Vary", "Origin")]
        switch decision {
        case .refuse(var refusal):
            refusal.headers += headers
            return .refuse(refusal)
        case .forward(var plan):
            plan.responseHeaders += headers
            plan.shadowed?.headers += headers
            return .forward(plan)
        case .verify, .serve:
            return decision
        }
    }
}
