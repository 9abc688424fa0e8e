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
}
