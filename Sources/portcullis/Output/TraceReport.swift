import PortcullisCore

/// Formats a decision and its trace for `check`: aligned text for people, JSON for machines.
struct TraceReport {
    let facts: RequestFacts
    let trace: Trace
    let decision: Decision
    let policy: Policy
    /// With `--listener decisions`: what the decision service answers.
    var serviceAnswer: DecisionServiceAnswer?

    private var lines: [(String, String)] {
        var lines: [(String, String)] = [("request", "\(self.facts.method) \(self.facts.rawTarget)" + (self.facts.host.map { " (Host: \($0))" } ?? ""))]
        for step in self.trace.steps {
            switch step {
            case .normalized(let path, let query, let host):
                lines.append(("normalized", path + (query.map { "?" + $0 } ?? "") + (host.map { " on host \($0)" } ?? "")))
            case .targetRefused(let reason):
                lines.append(("target", "refused: \(reason)"))
            case .matched(let route, let location):
                lines.append(("route", "\(route) (\(location.fileAndLine))"))
            case .noRoute(let allowed):
                lines.append(("route", allowed.isEmpty ? "none matches" : "none for this method; allowed: \(allowed.joined(separator: ", "))"))
            case .credentials(let text):
                lines.append(("credentials", text))
            case .tokenVerified(let token):
                lines.append(("token", "verified by key \(token.verifiedBy) (\(token.algorithm)), issuer \(token.issuer)"))
                lines.append(("", "sub \(token.subject), expires \(RFC3339.format(token.expiresAt))"))
            case .tokenRejected(let rejection):
                var text = "rejected: \(rejection.errorDescription)"
                if let field = rejection.failedField { text += " (claim \(field))" }
                if let set = self.decision.keySetToRefresh, !set.isLoaded {
                    text += "; the key set at \(set.displayURL) is unavailable offline"
                }
                lines.append(("token", text))
            case .schemeNotAvailable(let scheme):
                lines.append(("credentials", "\(scheme.rawValue) credentials cannot be verified by this version"))
            case .scopes(let required, let requiredAny, let granted, let missing):
                var text = "required: " + (required.isEmpty ? "-" : required.joined(separator: " "))
                if !requiredAny.isEmpty { text += "; any of: " + requiredAny.joined(separator: " ") }
                text += "; granted: " + (granted.isEmpty ? "-" : granted.joined(separator: " "))
                if !missing.isEmpty { text += "; missing: " + missing.joined(separator: " ") }
                lines.append(("scopes", text))
            case .roles(let required, let requiredAny, let granted, let missing):
                var text = "required: " + (required.isEmpty ? "-" : required.joined(separator: " "))
                if !requiredAny.isEmpty { text += "; any of: " + requiredAny.joined(separator: " ") }
                text += "; token has: " + (granted.isEmpty ? "-" : granted.joined(separator: " "))
                if !missing.isEmpty { text += "; missing: " + missing.joined(separator: " ") }
                lines.append(("roles", text))
            case .claimCondition(let condition, let held, let actual):
                lines.append((
                    "claim",
                    "\(condition.summary) (\(condition.location.fileAndLine)): \(held ? "held" : "failed"); the token has "
                        + (actual ?? "no such claim")
                ))
            case .preflight(let origin, let allowed):
                lines.append(("cors", "preflight from \(origin): \(allowed ? "allowed" : "refused")"))
            case .notServedHere(let why):
                lines.append(("listener", "not served here: \(why)"))
            }
        }
        switch self.decision {
        case .forward(let plan) where plan.shadowed != nil:
            Self.refusalLines(plan.shadowed!, into: &lines)
            lines.append(("shadow", "dry-run mode: logged as would_deny and forwarded anyway to \(plan.upstreamURL)"))
            for (name, value) in plan.headers { lines.append(("sends", "\(name): \(value)")) }
        case .forward where self.serviceAnswer != nil:
            // The decision service forwards nothing: its answer (below) is the whole outcome.
            lines.append(("decision", "allow: the edge proxy forwards the request"))
        case .forward(let plan):
            lines.append(("decision", "allow: would forward"))
            lines.append(("status", "200 (the upstream's answer)"))
            lines.append(("upstream", "\(plan.method) \(plan.upstreamURL)"))
            for (name, value) in self.identityHeaders(plan) { lines.append(("identity", "\(name): \(value)")) }
            for (name, value) in plan.headers { lines.append(("sends", "\(name): \(value)")) }
        case .refuse(let refusal):
            Self.refusalLines(refusal, into: &lines)
        case .verify:
            lines.append(("decision", "undecided: a credential check was not run"))
        case .serve(.tokenEndpoint):
            lines.append(("decision", "answered by the gateway: the token endpoint reads the form"))
            lines.append(("status", "200 with valid credentials (400/401/429 otherwise, see the token endpoint)"))
        case .serve(.preflight(_, let headers)):
            lines.append(("decision", "answered by the gateway: a CORS preflight"))
            lines.append(("status", "204"))
            for (name, value) in headers { lines.append(("header", "\(name): \(value)")) }
        case .serve(.tokenRevocation):
            lines.append(("decision", "answered by the gateway: the token endpoint revokes the refresh token's family"))
            lines.append(("status", "200 (401/429 when client authentication fails)"))
        case .serve(.document(let body, _)):
            lines.append(("decision", "answered by the gateway: a published document"))
            lines.append(("status", "200"))
            lines.append(("body", String(decoding: body, as: UTF8.self)))
        }
        if let answer = self.serviceAnswer {
            let decided = answer.decidedStatus == answer.status ? "" : " (decided \(answer.decidedStatus))"
            lines.append(("service", "the decision service answers \(answer.status)\(decided)"))
            for (name, value) in answer.headers { lines.append(("answers", "\(name): \(value)")) }
            if !answer.body.isEmpty { lines.append(("", String(decoding: answer.body, as: UTF8.self))) }
        }
        return lines
    }

    var text: String {
        let width = self.lines.map(\.0.count).max() ?? 0
        return self.lines.map { label, value in
            label + String(repeating: " ", count: width - label.count) + "  " + value
        }.joined(separator: "\n")
    }

    private static func refusalLines(_ refusal: Refusal, into lines: inout [(String, String)]) {
        lines.append(("decision", "deny: \(refusal.reason)"))
        lines.append(("status", "\(refusal.status)"))
        for challenge in refusal.challenges { lines.append(("challenge", challenge)) }
        for (name, value) in Self.otherHeaders(refusal) { lines.append(("header", "\(name): \(value)")) }
        lines.append(("body", String(decoding: refusal.body, as: UTF8.self)))
    }

    /// The refusal's headers besides its challenges (`Allow` on a 405).
    private static func otherHeaders(_ refusal: Refusal) -> [(name: String, value: String)] {
        refusal.headers.filter { $0.name.lowercased() != "www-authenticate" }
    }

    /// The identity headers among those the plan sends.
    private func identityHeaders(_ plan: ForwardPlan) -> [(name: String, value: String)] {
        guard plan.identity != nil else { return [] }
        return plan.headers.filter { self.policy.identityHeaderNames.contains($0.name.lowercased()) }
    }

    var json: String {
        var fields: [(String, String)] = [
            ("method", JSONText.string(self.facts.method)), ("target", JSONText.string(self.facts.rawTarget)),
        ]
        var route = "null"
        var steps: [String] = []
        var conditions: [String] = []
        for step in self.trace.steps {
            switch step {
            case .matched(let name, let location):
                route = "{\"name\":\(JSONText.string(name)),\"file\":\(JSONText.string(location.file)),\"line\":\(location.line)}"
            case .normalized(let path, let query, _):
                fields.append(("normalized_path", JSONText.string(path)))
                fields.append(("query", query.map(JSONText.string) ?? "null"))
            case .tokenVerified(let token):
                fields.append(("kid", JSONText.string(token.verifiedBy)))
                fields.append(("subject", JSONText.string(token.subject)))
                fields.append(("granted_scopes", "[" + token.scopes.map(JSONText.string).joined(separator: ",") + "]"))
            case .tokenRejected(let rejection):
                fields.append(("token_error", JSONText.string(rejection.reasonID.rawValue)))
                fields.append(("failed_claim", rejection.failedField.map(JSONText.string) ?? "null"))
            case .scopes(let required, _, _, let missing):
                fields.append(("required_scopes", "[" + required.map(JSONText.string).joined(separator: ",") + "]"))
                fields.append(("missing_scopes", "[" + missing.map(JSONText.string).joined(separator: ",") + "]"))
            case .roles(let required, _, let granted, let missing):
                fields.append(("required_roles", "[" + required.map(JSONText.string).joined(separator: ",") + "]"))
                fields.append(("roles", "[" + granted.map(JSONText.string).joined(separator: ",") + "]"))
                fields.append(("missing_roles", "[" + missing.map(JSONText.string).joined(separator: ",") + "]"))
            case .claimCondition(let condition, let held, let actual):
                conditions.append(
                    "{\"condition\":\(JSONText.string(condition.summary)),\"file\":\(JSONText.string(condition.location.file)),"
                        + "\"line\":\(condition.location.line),\"held\":\(held),\"actual\":\(actual ?? "null")}")
            default:
                break
            }
            steps.append(JSONText.string(Self.describe(step)))
        }
        fields.append(("route", route))
        if let answer = self.serviceAnswer {
            fields.append((
                "decision_service",
                "{\"status\":\(answer.status),\"decided_status\":\(answer.decidedStatus),\"decision\":\(JSONText.string(answer.outcome.rawValue)),"
                    + "\"headers\":\(Self.pairs(answer.headers)),\"body\":"
                    + (answer.body.isEmpty ? "null" : String(decoding: answer.body, as: UTF8.self)) + "}"
            ))
        }
        if !conditions.isEmpty { fields.append(("claim_conditions", "[" + conditions.joined(separator: ",") + "]")) }
        fields.append(("steps", "[" + steps.joined(separator: ",") + "]"))
        switch self.decision {
        case .forward(let plan) where plan.shadowed != nil:
            Self.refusalFields(plan.shadowed!, into: &fields)
            fields.append(("shadow_forward", JSONText.string(plan.upstreamURL)))
            fields.append(("upstream_method", JSONText.string(plan.method)))
            fields.append(("upstream_headers", Self.pairs(plan.headers)))
        case .forward(let plan):
            fields.append(("decision", "\"allow\""))
            fields.append(("status", "200"))
            fields.append(("challenge", "null"))
            fields.append(("upstream_method", JSONText.string(plan.method)))
            fields.append(("upstream_url", JSONText.string(plan.upstreamURL)))
            fields.append(("upstream_path", JSONText.string(plan.upstreamTarget)))
            let headers = self.identityHeaders(plan).map { "\(JSONText.string($0.0)):\(JSONText.string($0.1))" }
            fields.append(("identity_headers", "{" + headers.joined(separator: ",") + "}"))
            fields.append(("upstream_headers", Self.pairs(plan.headers)))
        case .refuse(let refusal):
            Self.refusalFields(refusal, into: &fields)
            fields.append(("shadow_forward", "null"))
        case .verify:
            fields.append(("decision", "\"undecided\""))
        case .serve(.preflight(_, let headers)):
            fields.append(("decision", "\"gateway\""))
            fields.append(("status", "204"))
            fields.append(("challenge", "null"))
            let rendered = headers.map { "\(JSONText.string($0.name)):\(JSONText.string($0.value))" }
            fields.append(("headers", "{" + rendered.joined(separator: ",") + "}"))
        case .serve(let answer):
            fields.append(("decision", "\"gateway\""))
            fields.append(("status", "200"))
            fields.append(("challenge", "null"))
            if case .document(let body, _) = answer {
                fields.append(("body", String(decoding: body, as: UTF8.self)))
            } else {
                fields.append(("answered_by", "\"token_endpoint\""))
            }
        }
        return "{" + fields.map { "\(JSONText.string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    private static func refusalFields(_ refusal: Refusal, into fields: inout [(String, String)]) {
        fields.append(("decision", "\"deny\""))
        fields.append(("reason", JSONText.string(refusal.reason.rawValue)))
        fields.append(("status", "\(refusal.status)"))
        let challenges = refusal.challenges
        fields.append(("challenge", challenges.isEmpty ? "null" : JSONText.string(challenges.joined(separator: ", "))))
        fields.append(("challenges", "[" + challenges.map(JSONText.string).joined(separator: ",") + "]"))
        let headers = Self.otherHeaders(refusal).map { "\(JSONText.string($0.name)):\(JSONText.string($0.value))" }
        fields.append(("headers", "{" + headers.joined(separator: ",") + "}"))
        fields.append(("body", String(decoding: refusal.body, as: UTF8.self)))
    }

    /// `[["Name","value"],…]`: the order and repeats of a header list survive.
    private static func pairs(_ headers: [(name: String, value: String)]) -> String {
        "[" + headers.map { "[\(JSONText.string($0.name)),\(JSONText.string($0.value))]" }.joined(separator: ",") + "]"
    }

    private static func describe(_ step: TraceStep) -> String {
        switch step {
        case .normalized(let path, let query, _): return "normalized \(path)" + (query.map { "?" + $0 } ?? "")
        case .targetRefused(let reason): return "target refused: \(reason)"
        case .matched(let route, let location): return "matched \(route) at \(location.fileAndLine)"
        case .noRoute(let allowed): return allowed.isEmpty ? "no route" : "no route for this method"
        case .credentials(let text): return "credentials: \(text)"
        case .tokenVerified(let token): return "token verified by \(token.verifiedBy)"
        case .tokenRejected(let rejection): return "token rejected: \(rejection.reasonID)"
        case .schemeNotAvailable(let scheme): return "\(scheme.rawValue) not available"
        case .scopes(let required, _, let granted, let missing):
            return "scopes required [\(required.joined(separator: " "))] granted [\(granted.joined(separator: " "))] missing [\(missing.joined(separator: " "))]"
        case .roles(let required, _, let granted, let missing):
            return "roles required [\(required.joined(separator: " "))] token has [\(granted.joined(separator: " "))] missing [\(missing.joined(separator: " "))]"
        case .claimCondition(let condition, let held, let actual):
            return "claim \(condition.summary) at \(condition.location.fileAndLine): \(held ? "held" : "failed") (token has \(actual ?? "no such claim"))"
        case .preflight(let origin, let allowed): return "CORS preflight from \(origin) \(allowed ? "allowed" : "refused")"
        case .notServedHere(let why): return "not served here: \(why)"
        }
    }
}
