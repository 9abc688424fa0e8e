/// Checks across routes that only make sense once they are all read.
enum RouteChecks {
    /// Warns about a route that can never match because an earlier route matches every request
    /// it would. First match wins (contract §3), so the later route is dead configuration.
    static func reportShadowing(_ routes: [RouteConfig], _ reader: ConfigReader) {
        for (index, later) in routes.enumerated() {
            for earlier in routes[..<index] where self.covers(earlier, later) {
                reader.add(
                    ConfigDiagnostic(
                        .warning, .shadowedRoute, at: later.location,
                        "route '\(later.name)' can never match: route '\(earlier.name)' (\(earlier.location.fileAndLine)) matches every request it would"
                    ))
                break
            }
        }
    }

    static func covers(_ a: RouteConfig, _ b: RouteConfig) -> Bool {
        guard b.methods.isSubset(of: a.methods), a.path.covers(b.path) else { return false }
        if a.hosts.isEmpty { return true }
        if b.hosts.isEmpty { return false }
        return b.hosts.allSatisfy { host in a.hosts.contains { $0.covers(host) } }
    }

    /// Warns about a public route (`auth: none`) that shares paths with a protected one: the
    /// first listed wins for those requests, which is easy to get wrong.
    static func reportOpenOverlaps(_ routes: [RouteConfig], _ reader: ConfigReader) {
        for (index, open) in routes.enumerated() where open.auth == .none {
            for (otherIndex, protected) in routes.enumerated() where protected.auth != .none {
                guard open.path.overlaps(protected.path), self.methodsOverlap(open.methods, protected.methods),
                    self.hostsOverlap(open.hosts, protected.hosts),
                    !(otherIndex < index && self.covers(protected, open)), !(index < otherIndex && self.covers(open, protected))
                else { continue }
                let winner = index < otherIndex ? "the public route comes first and wins" : "the protected route comes first and wins"
                reader.add(
                    ConfigDiagnostic(
                        .warning, .shadowedRoute, at: open.location,
                        "route '\(open.name)' has auth: none and shares paths with the protected route '\(protected.name)' (\(protected.location.fileAndLine)); \(winner)"
                    ))
            }
        }
    }

    /// Warns about scopes a route requires that no credential could ever carry: no local user
    /// or API key holds them, and no issuer other than the gateway's own could put them in a token.
    static func reportUnreachableScopes(
        _ routes: [RouteConfig], users: [UserConfig], apiKeys: [APIKeyConfig], issuers: [IssuerConfig], localIssuer: String?,
        _ reader: ConfigReader
    ) {
        guard !issuers.contains(where: { $0.issuer != localIssuer }) else { return }
        let holdable = Set(users.flatMap(\.scopes) + apiKeys.flatMap(\.scopes))
        for route in routes where route.auth != .none {
            let unreachable = route.scopes.filter { !holdable.contains($0) }
            let anyUnreachable = !route.scopesAny.isEmpty && route.scopesAny.allSatisfy { !holdable.contains($0) }
            guard !unreachable.isEmpty || anyUnreachable else { continue }
            let names = (unreachable + (anyUnreachable ? route.scopesAny : [])).joined(separator: " ")
            reader.add(
                ConfigDiagnostic(
                    .warning, .badValue, at: route.location,
                    "route '\(route.name)' requires scopes no user, API key or external issuer can hold: \(names)"))
        }
    }

    /// Warns about a route that refuses every request because none of the schemes it accepts
    /// can be satisfied: Bearer without any issuer, Basic without any user, API keys without any
    /// key. Such a file is valid, but every request to the route would be a 401. Not said of a
    /// file with errors: a route whose `auth` is misspelt reads as the default, `bearer`.
    static func reportUnusableSchemes(
        _ routes: [RouteConfig], users: [UserConfig], apiKeys: [APIKeyConfig], issuers: [IssuerConfig], _ reader: ConfigReader
    ) {
        guard !reader.diagnostics.hasErrors else { return }
        for route in routes {
            guard case .required(let schemes) = route.auth else { continue }
            let missing = schemes.compactMap { scheme -> String? in
                switch scheme {
                case .bearer: issuers.isEmpty ? "no issuer is configured for Bearer tokens (jwt.issuers)" : nil
                case .basic: users.isEmpty ? "no user is configured for Basic (users)" : nil
                case .apiKey: apiKeys.isEmpty ? "no API key is configured (api_keys)" : nil
                }
            }
            guard missing.count == schemes.count else { continue }
            reader.add(
                ConfigDiagnostic(
                    .warning, .badValue, at: route.location,
                    "route '\(route.name)' refuses every request: \(missing.joined(separator: "; "))"))
        }
    }

    private static func methodsOverlap(_ a: MethodSet, _ b: MethodSet) -> Bool {
        guard let left = a.methods, let right = b.methods else { return true }
        return !left.isDisjoint(with: right)
    }

    private static func hostsOverlap(_ a: [HostPattern], _ b: [HostPattern]) -> Bool {
        if a.isEmpty || b.isEmpty { return true }
        return a.contains { left in b.contains { right in left.covers(right) || right.covers(left) } }
    }
}
