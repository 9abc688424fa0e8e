package import PortcullisCrypto

/// One case of a policy test file (contract §7): a request, the credentials to send, and what
/// the decision must be.
package struct PolicyCase: Sendable {
    package var name: String
    package var location: SourceLocation
    package var method: String
    package var path: String
    package var headers: [(name: String, value: String)]
    package var credentials: Credentials
    /// Evaluate time-based claims at this instant (seconds since 1970) instead of now. Minted
    /// tokens are still minted now, so a case can look at them from the future.
    package var now: Double?
    /// `decisions`: the case is decided as the decision service decides it, and `expect`
    /// describes that service's answer (its status, challenges and headers).
    package var listener: Listener = .proxy
    package var expect: Expectation

    package enum Credentials: Sendable {
        case none
        /// Minted with the configured signing key.
        case minted(subject: String, scopes: [String], ttlSeconds: Int64?)
        case bearer(String)
        case basic(username: String, password: String)
        /// Decided as if a token of `issuer` with these claims had verified (no key needed).
        case claims(issuer: String?, claims: JSONValue)
    }

    package struct Expectation: Sendable {
        /// `200` means "would be forwarded" (on the decision service: "allowed").
        package var status: Int?
        package var route: String?
        package var upstreamPath: String?
        /// A substring of the `WWW-Authenticate` answer.
        package var challenge: String?
        /// Headers the forwarded request must carry (the identity headers); on the decision
        /// service, headers its answer must carry (an empty value for an empty header).
        package var headers: [(name: String, value: String)] = []
    }
}

/// The outcome of one case.
package struct PolicyCaseResult: Sendable {
    package var name: String
    package var location: SourceLocation
    /// Empty when the case passed.
    package var failures: [String]
    package var summary: String
    /// The route outcome the case's decision reached, for `--coverage`; `nil` when none or
    /// when the case could not be decided.
    package var reached: PolicyCoverage.Reach? = nil

    package var passed: Bool { self.failures.isEmpty }
}

extension PolicyCase {
    /// Why a case cannot be decided on a configuration.
    package struct Problem: Error, Sendable {
        package var text: String
        package var summary: String
    }

    /// The request facts of the case on `policy`, credentials included: a minted token is minted
    /// with the policy's signing key at `defaultNow`.
    package func prepare(_ policy: Policy, now defaultNow: Double) -> Result<RequestFacts, Problem> {
        var authorization: [String] = []
        switch self.credentials {
        case .none, .claims:
            break
        case .bearer(let raw):
            authorization.append("Bearer \(raw)")
        case .basic(let username, let password):
            authorization.append("Basic " + Base64.encode(Array("\(username):\(password)".utf8)))
        case .minted(let subject, let scopes, let ttl):
            guard let endpoint = policy.config.tokenEndpoint else {
                return .failure(Problem(text: "'token' needs token_endpoint.signing_key in the configuration", summary: "no signing key"))
            }
            do {
                let token = try TokenMinter.mint(
                    endpoint, subject: subject, scopes: scopes, ttlSeconds: ttl ?? endpoint.accessTokenTTL / 1000, now: defaultNow)
                authorization.append("Bearer \(token)")
            } catch {
                return .failure(Problem(text: "minting failed: \(error)", summary: "error"))
            }
        }
        var facts = RequestFacts.dryRun(
            method: self.method, target: self.path, headers: self.headers, authorization: authorization, policy: policy)
        facts.listener = self.listener
        if case .claims(let named, let claims) = self.credentials {
            switch policy.assumedIssuer(named) {
            case .success(let issuer): facts.assumedToken = (issuer, claims)
            case .failure(let message):
                return .failure(Problem(text: message.text, summary: "error"))
            }
        }
        return .success(facts)
    }

    /// Runs the case through ``Policy/decide(_:now:recorder:)``, the function `serve` uses.
    package func run(_ policy: Policy, now defaultNow: Double) -> PolicyCaseResult {
        let instant = self.now ?? defaultNow
        let facts: RequestFacts
        switch self.prepare(policy, now: defaultNow) {
        case .success(let prepared): facts = prepared
        case .failure(let problem):
            return PolicyCaseResult(name: self.name, location: self.location, failures: [problem.text], summary: problem.summary)
        }
        var trace = Trace()
        let decision = policy.decideCompletely(facts, now: instant, recorder: &trace)

        var failures: [String] = []
        var status: Int
        var route: String?
        var challenges: [String] = []
        var forwardedHeaders: [(String, String)] = []
        var upstreamPath: String?
        if let set = decision.keySetToRefresh, !set.isLoaded {
            return PolicyCaseResult(
                name: self.name, location: self.location,
                failures: ["cannot be decided offline: the token's key would come from \(set.displayURL), which test does not fetch"],
                summary: "undecidable offline")
        }
        switch decision {
        case .forward(let plan) where plan.shadowed != nil:
            // Shadow mode: the case describes what enforcement answers.
            status = plan.shadowed!.status
            route = plan.routeName
            challenges = plan.shadowed!.challenges
        case .forward(let plan):
            status = 200
            route = plan.routeName
            upstreamPath = plan.upstreamTarget
            // What the upstream receives, as serve sends it.
            forwardedHeaders = plan.headers
        case .refuse(let refusal):
            status = refusal.status
            route = refusal.routeName
            challenges = refusal.challenges
        case .verify:
            status = 500
        case .serve(.preflight(let name, _)):
            status = 204
            route = name
        case .serve:
            // The gateway's own answer: a document, or the token endpoint (200 for a good form).
            status = 200
            route = Policy.tokenEndpointRoute
        }
        if self.listener == .decisions {
            // What the edge proxy is answered, as the decision service sends it once enforced.
            var enforced = decision
            if case .forward(let plan) = decision, let refusal = plan.shadowed { enforced = .refuse(refusal) }
            let answer = policy.decisionServiceAnswer(enforced, requestID: facts.requestID)
            status = answer.status
            route = answer.routeName
            challenges = answer.headers.filter { $0.name == Challenge.headerName }.map(\.value)
            forwardedHeaders = answer.headers
        }
        let why = Self.reason(trace, decision)
        if let expected = self.expect.status, expected != status {
            failures.append("expected status \(expected), got \(status) (\(why))")
        }
        if let expected = self.expect.route, expected != route {
            failures.append("expected route '\(expected)', got \(route.map { "'\($0)'" } ?? "no route")")
        }
        if let expected = self.expect.upstreamPath, expected != upstreamPath {
            failures.append("expected upstream path \(expected), got \(upstreamPath ?? "nothing forwarded")")
        }
        if let expected = self.expect.challenge, !challenges.contains(where: { $0.contains(expected) }) {
            failures.append("expected a challenge containing \(expected), got \(challenges.isEmpty ? "none" : challenges.joined(separator: " | "))")
        }
        for (name, value) in self.expect.headers {
            let actual = forwardedHeaders.first { $0.0.lowercased() == name.lowercased() }?.1
            if actual != value {
                let kind = self.listener == .decisions ? "answered" : "forwarded"
                failures.append("expected \(kind) header \(name): \(value), got \(actual.map { "\(name): \($0)" } ?? "none")")
            }
        }
        return PolicyCaseResult(
            name: self.name, location: self.location, failures: failures, summary: "\(status) \(why)",
            reached: PolicyCoverage.reach(of: decision))
    }

    private static func reason(_ trace: Trace, _ decision: Decision) -> String {
        switch decision {
        case .forward(let plan): return "forwarded by route \(plan.routeName)"
        case .refuse(let refusal):
            for step in trace.steps.reversed() {
                if case .tokenRejected(let rejection) = step {
                    return "\(refusal.reason.rawValue): \(rejection.errorDescription)"
                }
            }
            return refusal.reason.rawValue
        case .verify:
            return "credential check left undone"
        case .serve(.tokenEndpoint):
            return "answered by the token endpoint"
        case .serve(.tokenRevocation):
            return "answered by the token revocation endpoint"
        case .serve(.document):
            return "a document the gateway publishes"
        case .serve(.preflight):
            return "a CORS preflight the gateway answers"
        }
    }
}

