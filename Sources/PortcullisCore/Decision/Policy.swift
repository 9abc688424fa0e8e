/// Everything derived from one configuration, built once and then only read: the compiled
/// routes and their pre-rendered refusals. Shared by every request of a config generation.
package final class Policy: Sendable {
    package let config: GatewayConfig
    package let routes: [CompiledRoute]

    package struct CompiledRoute: Sendable {
        package let config: RouteConfig
        package let upstream: UpstreamConfig
        /// The answer to a request without (verifiable) credentials; `nil` for `auth: none`.
        package let unauthenticated: Refusal?
    }

    package init(config: GatewayConfig) {
        self.config = config
        let realm = config.server.realm
        self.routes = config.routes.compactMap { route in
            guard let upstream = config.upstreams[route.upstream] else { return nil }
            return CompiledRoute(
                config: route, upstream: upstream, unauthenticated: Self.unauthenticatedRefusal(route, realm: realm))
        }
    }

    private static func unauthenticatedRefusal(_ route: RouteConfig, realm: String) -> Refusal? {
        let schemes: [AuthScheme]
        switch route.auth {
        case .none: return nil
        case .optional: schemes = [.bearer]
        case .required(let list): schemes = list
        }
        let scope = (route.scopes.isEmpty ? route.scopesAny : route.scopes).joined(separator: " ")
        let headers = schemes.map { scheme -> (name: String, value: String) in
            switch scheme {
            case .bearer:
                return ("WWW-Authenticate", scope.isEmpty ? "Bearer realm=\"\(realm)\"" : "Bearer realm=\"\(realm)\", scope=\"\(scope)\"")
            case .basic:
                return ("WWW-Authenticate", "Basic realm=\"\(realm)\", charset=\"UTF-8\"")
            case .apiKey:
                return ("WWW-Authenticate", "APIKey")
            }
        }
        return Refusal(status: 401, headers: headers, detail: "Not authenticated", reason: "missing_credentials")
    }

    /// The one decision function: normalize, match, authenticate, authorize.
    package func decide(_ request: RequestFacts) -> Decision {
        let target: RequestTarget
        switch RequestTarget.normalize(request.rawTarget, mergeSlashes: self.config.server.mergeSlashes) {
        case .success(let normalized): target = normalized
        case .failure(let refusal):
            return .refuse(Refusal(status: 400, detail: refusal.detail, reason: "bad_target"))
        }
        let host = Self.matchingHost(target.authority ?? request.host)
        let path = target.path[...]

        var allowed: Set<String> = []
        for (index, route) in self.routes.enumerated() {
            let config = route.config
            guard config.path.matches(path) else { continue }
            if !config.hosts.isEmpty {
                guard let host, config.hosts.contains(where: { $0.matches(host) }) else { continue }
            }
            guard config.methods.contains(request.method) else {
                allowed.formUnion(config.methods.methods ?? [])
                continue
            }
            return self.authorize(index, route, target: target, request: request)
        }
        if allowed.isEmpty { return .refuse(.notFound) }
        return .refuse(
            Refusal(
                status: 405, headers: [("Allow", allowed.sorted().joined(separator: ", "))], detail: "Method Not Allowed",
                reason: "method_not_allowed"))
    }

    private func authorize(_ index: Int, _ route: CompiledRoute, target: RequestTarget, request: RequestFacts) -> Decision {
        switch route.config.auth {
        case .none:
            break
        case .optional:
            // Credentials that cannot be verified are refused as on a bearer route; none at all
            // pass anonymously.
            if let refusal = route.unauthenticated, !request.authorization.isEmpty { return .refuse(refusal) }
        case .required:
            if let refusal = route.unauthenticated { return .refuse(refusal) }
        }
        return .forward(Self.plan(index, route, target: target))
    }

    static func plan(_ index: Int, _ route: CompiledRoute, target: RequestTarget) -> ForwardPlan {
        var path = target.path
        if let prefix = route.config.stripPrefix, path.hasPrefix(prefix) {
            let rest = path.dropFirst(prefix.count)
            if rest.isEmpty {
                path = "/"
            } else if rest.first == "/" {
                path = String(rest)
            }
        }
        let origin: String
        switch route.upstream.target {
        case .http(let base, let basePath):
            origin = base
            path = basePath + path
        case .unixSocket:
            origin = "http://localhost"
        }
        var upstreamTarget = path
        if let query = target.query {
            upstreamTarget += "?"
            upstreamTarget += query
        }
        return ForwardPlan(
            routeIndex: index, routeName: route.config.name, upstream: route.upstream, upstreamTarget: upstreamTarget,
            upstreamURL: origin + upstreamTarget)
    }

    /// The host a route's `hosts` are compared with: lower-case, without port or trailing dot.
    static func matchingHost(_ raw: String?) -> Substring? {
        guard var host = raw?[...], !host.isEmpty else { return nil }
        if host.first == "[" {
            if let close = host.firstIndex(of: "]") { host = host[...close] }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        if host.last == "." { host = host.dropLast() }
        if host.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) { return Substring(host.lowercased()) }
        return host
    }
}
