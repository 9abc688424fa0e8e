package import PortcullisCrypto

/// What a configuration change does to requests (contract §13): a probe set generated from
/// both configurations, decided on each by the one decision function, and every probe whose
/// answer differs. No secrets are needed: credentials are claims, decided as `check --claims`
/// decides them.
package enum PolicyDiff {
    /// One request of the probe set.
    package struct Probe: Sendable {
        package var method: String
        package var target: String
        package var host: String?
        /// Claims of a token from `issuer`, taken as verified; `nil` for no credentials.
        package var token: (issuer: String, claims: JSONValue)?
        /// What the probe is: `no credentials`, `claims meeting route 'admin'`, a case's name.
        package var label: String
        /// The route of the configuration the probe was made from, when it was made from one.
        package var route: String?
        /// A case of a case file: decided as `test` decides it.
        package var policyCase: PolicyCase?
    }

    /// What one configuration answers to a probe: the fields a reviewer compares.
    package struct Answer: Sendable, Equatable {
        package var route: String?
        package var status: Int
        package var challenge: String?
        package var upstreamURL: String?
        /// The identity headers the upstream would get, `Name: value`.
        package var identity: [String]

        package var forwarded: Bool { self.upstreamURL != nil }
    }

    /// A probe both configurations answer differently.
    package struct Difference: Sendable {
        package var probe: Probe
        package var old: Answer
        package var new: Answer

        /// Most severe first: refused before and forwarded now, then the reverse, then a
        /// forward that changed (upstream, identity), then a refusal that changed.
        package var severity: Int {
            switch (self.old.forwarded, self.new.forwarded) {
            case (false, true): return 0
            case (true, false): return 1
            case (true, true): return 2
            case (false, false): return 3
            }
        }

        package var kind: String {
            ["opened", "closed", "forward changed", "refusal changed"][self.severity]
        }
    }

    /// Decides every probe on both policies; the differences, grouped by route and most severe
    /// first.
    package static func differences(old: Policy, new: Policy, cases: [PolicyCase], now: Double) -> (probes: Int, differences: [Difference]) {
        let probes = self.probes(old) + self.probes(new)
            + cases.map { Probe(method: $0.method, target: $0.path, host: nil, token: nil, label: "case '\($0.name)' (\($0.location.fileAndLine))", route: nil, policyCase: $0) }
        var seen = Set<String>()
        var differences: [Difference] = []
        var count = 0
        for probe in probes {
            let key = probe.key
            guard seen.insert(key).inserted else { continue }
            count += 1
            let before = self.answer(old, probe, now: now)
            let after = self.answer(new, probe, now: now)
            if before != after { differences.append(Difference(probe: probe, old: before, new: after)) }
        }
        differences.sort { a, b in
            let routeA = a.new.route ?? a.old.route ?? a.probe.route ?? ""
            let routeB = b.new.route ?? b.old.route ?? b.probe.route ?? ""
            if a.severity != b.severity { return a.severity < b.severity }
            return routeA < routeB
        }
        return (count, differences)
    }

    // MARK: the probe set

    /// For every route: every listed method (GET and POST when none are listed), a path made
    /// from its pattern (a sample segment for `*` and `{name}`, nothing and two segments for
    /// `**`), each listed host (a sample name for a wildcard), each with no credentials, with
    /// claims that meet exactly the route's requirements from each accepted issuer, and with
    /// each single requirement missing.
    package static func probes(_ policy: Policy) -> [Probe] {
        var probes: [Probe] = []
        let issuers = policy.config.jwt.issuers
        for route in policy.routes {
            let config = route.config
            let methods = config.methods.methods.map { $0.sorted() } ?? ["GET", "POST"]
            let hosts: [String?] = config.hosts.isEmpty ? [nil] : config.hosts.map { Self.sampleHost($0.text) }
            let acceptsTokens: Bool
            switch config.auth {
            case .none: acceptsTokens = false
            case .optional: acceptsTokens = true
            case .required(let schemes): acceptsTokens = schemes.contains(.bearer)
            }
            var credentials: [(token: (issuer: String, claims: JSONValue)?, label: String)] = [(nil, "no credentials")]
            if acceptsTokens {
                let accepted = config.issuers.isEmpty ? issuers : issuers.filter { config.issuers.contains($0.issuer) }
                for issuer in accepted {
                    let requirements = Self.requirements(config)
                    credentials.append(((issuer.issuer, Self.claims(meeting: requirements, issuer, policy)), "claims of \(issuer.issuer) meeting route '\(config.name)'"))
                    for (index, missing) in requirements.enumerated() {
                        var fewer = requirements
                        fewer.remove(at: index)
                        credentials.append(((issuer.issuer, Self.claims(meeting: fewer, issuer, policy)), "claims of \(issuer.issuer) without \(missing.description)"))
                    }
                }
            }
            for path in Self.samplePaths(config.path) {
                for method in methods {
                    for host in hosts {
                        for credential in credentials {
                            probes.append(Probe(method: method, target: path, host: host, token: credential.token, label: credential.label, route: config.name))
                        }
                    }
                }
            }
        }
        return probes
    }

    static func samplePaths(_ pattern: PathPattern) -> [String] {
        var prefix = ""
        for segment in pattern.segments {
            switch segment {
            case .literal(let text): prefix += "/" + text
            case .any, .named: prefix += "/sample"
            case .rest:
                return [prefix.isEmpty ? "/" : prefix, prefix + "/a/b"]
            }
        }
        if pattern.text.hasSuffix("/") && !prefix.hasSuffix("/") { prefix += "/" }
        return [prefix.isEmpty ? "/" : prefix]
    }

    static func sampleHost(_ pattern: String) -> String {
        pattern.hasPrefix("*.") ? "probe" + pattern.dropFirst(1) : pattern
    }

    /// One thing a route requires of a token.
    enum Requirement: CustomStringConvertible {
        case scope(String)
        case anyScope([String])
        case role(String)
        case anyRole([String])
        case condition(ClaimCondition)

        var description: String {
            switch self {
            case .scope(let scope): return "scope '\(scope)'"
            case .anyScope(let scopes): return "any of the scopes \(scopes.joined(separator: " "))"
            case .role(let role): return "role '\(role)'"
            case .anyRole(let roles): return "any of the roles \(roles.joined(separator: " "))"
            case .condition(let condition): return "the condition \(condition.summary)"
            }
        }
    }

    static func requirements(_ route: RouteConfig) -> [Requirement] {
        var list: [Requirement] = route.scopes.map(Requirement.scope)
        if !route.scopesAny.isEmpty { list.append(.anyScope(route.scopesAny)) }
        list += route.roles.map(Requirement.role)
        if !route.rolesAny.isEmpty { list.append(.anyRole(route.rolesAny)) }
        list += route.claims.map(Requirement.condition)
        return list
    }

    /// Claims that meet `requirements` and nothing more, from `issuer`.
    static func claims(meeting requirements: [Requirement], _ issuer: IssuerConfig, _ policy: Policy) -> JSONValue {
        // The gateway's own tokens name a local user, who must exist and be enabled.
        var subject = "diff-probe"
        if issuer.issuer == policy.config.tokenEndpoint?.issuer, let user = policy.config.users.first(where: { !$0.disabled }) {
            subject = user.username
        }
        var claims = JSONValue.object(["sub": .string(subject)])
        var scopes: [String] = []
        var roles: [String] = []
        var conditions: [ClaimCondition] = []
        for requirement in requirements {
            switch requirement {
            case .scope(let scope): scopes.append(scope)
            case .anyScope(let options): scopes.append(options[0])
            case .role(let role): roles.append(role)
            case .anyRole(let options): roles.append(options[0])
            case .condition(let condition): conditions.append(condition)
            }
        }
        let scopePath = issuer.scopeClaims?.first ?? policy.config.jwt.scopeClaims.first.flatMap(ClaimPath.init) ?? ClaimPath("scope")!
        Self.set(&claims, scopePath.segments[...], .string(scopes.joined(separator: " ")))
        if let rolesPath = issuer.rolesClaims.first, !roles.isEmpty {
            Self.set(&claims, rolesPath.segments[...], .array(roles.map(JSONValue.string)))
        }
        for condition in conditions {
            switch condition.test {
            case .equals(let value): Self.set(&claims, condition.path.segments[...], value)
            case .oneOf(let values): if let first = values.first { Self.set(&claims, condition.path.segments[...], first) }
            case .contains(let value): Self.set(&claims, condition.path.segments[...], .array([value]))
            case .present(true): Self.set(&claims, condition.path.segments[...], .string("present"))
            case .present(false): break
            }
        }
        return claims
    }

    private static func set(_ value: inout JSONValue, _ path: ArraySlice<String>, _ leaf: JSONValue) {
        guard let first = path.first else {
            value = leaf
            return
        }
        var members: [String: JSONValue] = [:]
        if case .object(let existing) = value { members = existing }
        var child = members[first] ?? .object([:])
        Self.set(&child, path.dropFirst(), leaf)
        members[first] = child
        value = .object(members)
    }

    // MARK: deciding

    static func answer(_ policy: Policy, _ probe: Probe, now: Double) -> Answer {
        var facts: RequestFacts
        var instant = now
        if let policyCase = probe.policyCase {
            switch policyCase.prepare(policy, now: now) {
            case .success(let prepared): facts = prepared
            case .failure(let problem):
                return Answer(route: nil, status: 0, challenge: problem.text, upstreamURL: nil, identity: [])
            }
            instant = policyCase.now ?? now
        } else {
            let headers = probe.host.map { [("Host", $0)] } ?? [("Host", "diff.example")]
            facts = RequestFacts.dryRun(method: probe.method, target: probe.target, headers: headers, policy: policy)
            facts.requestID = "diff"
            facts.assumedToken = probe.token
        }
        var trace = NoTrace()
        switch policy.decideCompletely(facts, now: instant, recorder: &trace) {
        case .forward(let plan) where plan.shadowed == nil:
            let identity = plan.headers.filter { policy.identityHeaderNames.contains($0.name.lowercased()) }
            return Answer(
                route: plan.routeName, status: 200, challenge: nil, upstreamURL: plan.method + " " + plan.upstreamURL,
                identity: identity.map { "\($0.name): \($0.value)" })
        case .forward(let plan):
            let refusal = plan.shadowed!
            return Answer(
                route: plan.routeName, status: refusal.status, challenge: refusal.challenges.joined(separator: ", ").nilIfEmpty,
                upstreamURL: nil, identity: [])
        case .refuse(let refusal):
            return Answer(
                route: refusal.routeName, status: refusal.status, challenge: refusal.challenges.joined(separator: ", ").nilIfEmpty,
                upstreamURL: nil, identity: [])
        case .verify:
            return Answer(route: nil, status: 500, challenge: nil, upstreamURL: nil, identity: [])
        case .serve(.preflight(let route, _)):
            return Answer(route: route, status: 204, challenge: nil, upstreamURL: nil, identity: [])
        case .serve:
            return Answer(route: Policy.tokenEndpointRoute, status: 200, challenge: nil, upstreamURL: nil, identity: [])
        }
    }
}

extension PolicyDiff.Probe {
    /// Two probes with the same key are the same request.
    var key: String {
        let token = self.token.map { "\($0.issuer) \($0.claims.serialized)" } ?? "-"
        let source = self.policyCase.map { "case \($0.location.fileAndLine)" } ?? ""
        return "\(self.method) \(self.target) \(self.host ?? "-") \(token) \(source)"
    }

    /// The request as a reviewer reads it.
    package var request: String {
        "\(self.method) \(self.target)" + (self.host.map { " (Host: \($0))" } ?? "")
    }
}

extension String {
    fileprivate var nilIfEmpty: String? { self.isEmpty ? nil : self }
}
