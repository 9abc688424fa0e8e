internal import Yams

extension ConfigLoader {
    // MARK: routes

    static func readRoutes(
        _ node: Node, server: ServerConfig, upstreams: [String: UpstreamConfig], _ reader: ConfigReader
    ) -> [RouteConfig] {
        guard let items = reader.sequence(node, "routes") else { return [] }
        var routes: [RouteConfig] = []
        var seen: [String: SourceLocation] = [:]
        for item in items {
            guard let fields = reader.mapping(item, "a route", keys: self.routeKeys) else { continue }
            guard let nameNode = fields.required("name", reader, "a route"), let name = reader.string(nameNode, "route name")
            else { continue }
            let what = "route '\(name)'"
            if let earlier = seen[name] {
                reader.error(.duplicateName, nameNode, "duplicate route name '\(name)' (first defined at \(earlier))")
            }
            seen[name] = reader.location(nameNode)
            // Logs and metrics label requests that matched no route "-" and token requests
            // "token_endpoint": a route of either name would merge its series with theirs.
            if name == "-" || name == Policy.tokenEndpointRoute {
                reader.error(.badValue, nameNode, "the route name '\(name)' is reserved: logs and metrics use it for requests no route handles")
            } else if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                reader.error(.badValue, nameNode, "a route name may not contain control characters")
            }
            // The route's place is its `- name:` line: that is what the dry-run trace shows.
            let location = reader.location(fields.keyNode("name") ?? item)

            var path: PathPattern?
            var methods = MethodSet.all
            var hosts: [HostPattern] = []
            if let matchNode = fields.required("match", reader, what),
                let match = reader.mapping(matchNode, "\(what) match", keys: ["path", "methods", "hosts"])
            {
                if let pathNode = match.required("path", reader, "\(what) match"),
                    let text = reader.string(pathNode, "\(what) match.path")
                {
                    do {
                        path = try PathPattern(text, mergeSlashes: server.mergeSlashes)
                    } catch {
                        reader.error(.badValue, pathNode, "\(what): bad path pattern '\(text)': \(patternMessage(error))")
                    }
                }
                if let methodsNode = match["methods"], let list = reader.stringList(methodsNode, "\(what) match.methods") {
                    var set = Set<String>()
                    for (method, methodNode) in list {
                        if Policy.servedMethods.contains(method) {
                            set.insert(method)
                        } else if Policy.servedMethods.contains(method.uppercased()) {
                            reader.error(.badValue, methodNode, "method '\(method)' must be upper-case: '\(method.uppercased())'")
                        } else if MethodSet.isToken(method) {
                            // A misspelt method would leave the requests it meant to the next route.
                            var message = "the gateway refuses method '\(method)' (400) before routing, so this would never match"
                            if let suggestion = closestMatch(method, in: Policy.servedMethods.sorted().map { $0.lowercased() })?.uppercased() {
                                message += "; did you mean '\(suggestion)'?"
                            }
                            reader.error(.badValue, methodNode, message)
                        } else {
                            reader.error(.badValue, methodNode, "'\(method)' is not an HTTP method")
                        }
                    }
                    if list.isEmpty {
                        reader.error(.badValue, methodsNode, "\(what) match.methods is empty: the route could never match")
                    }
                    methods = MethodSet(methods: set)
                }
                if let hostsNode = match["hosts"], let list = reader.stringList(hostsNode, "\(what) match.hosts") {
                    for (text, hostNode) in list {
                        if let pattern = HostPattern(text) {
                            hosts.append(pattern)
                        } else {
                            reader.error(.badValue, hostNode, "'\(text)' is not a host name or *.domain pattern")
                        }
                    }
                    if list.isEmpty {
                        reader.error(.badValue, hostsNode, "\(what) match.hosts is empty: the route could never match")
                    }
                }
            }

            var auth = RouteAuth.required([.bearer])
            if let authNode = fields["auth"] { auth = self.readAuth(authNode, what, reader) ?? auth }
            let scopes = fields["scopes"].flatMap { self.readScopes($0, "\(what) scopes", reader) } ?? []
            let scopesAny = fields["scopes_any"].flatMap { self.readScopes($0, "\(what) scopes_any", reader) } ?? []
            if auth == .none, let node = fields.keyNode("scopes") ?? fields.keyNode("scopes_any") {
                reader.error(.badValue, node, "\(what) has auth: none, so its scopes could never be checked")
            } else if auth == .optional, let node = fields.keyNode("scopes") ?? fields.keyNode("scopes_any") {
                reader.warning(
                    .badValue, node,
                    "\(what) has auth: optional: requests without a token pass without these scopes; only a token that lacks them is refused")
            }

            var upstreamName = ""
            if let upstreamNode = fields.required("upstream", reader, what),
                let text = reader.string(upstreamNode, "\(what) upstream")
            {
                upstreamName = text
                if upstreams[text] == nil {
                    var message = "\(what) names the unknown upstream '\(text)'"
                    if let suggestion = closestMatch(text, in: Array(upstreams.keys)) {
                        message += "; did you mean '\(suggestion)'?"
                    }
                    reader.error(.unknownReference, upstreamNode, message)
                }
            }
            var stripPrefix: String?
            if let node = fields["strip_prefix"], let text = reader.string(node, "\(what) strip_prefix") {
                var prefix = text
                while prefix.count > 1 && prefix.hasSuffix("/") { prefix.removeLast() }
                if !prefix.hasPrefix("/") || prefix.contains("*") || prefix.contains("{") {
                    reader.error(.badValue, node, "\(what) strip_prefix must be a literal path starting with '/'")
                } else if !Self.isNormalPath(prefix, mergeSlashes: server.mergeSlashes) {
                    reader.error(.badValue, node, "\(what) strip_prefix '\(text)' can never match: request paths are normalized before matching (\(Self.normalForm(prefix, mergeSlashes: server.mergeSlashes)))")
                } else {
                    stripPrefix = prefix == "/" ? nil : prefix
                }
            }
            let forwardAuthorization = fields["forward_authorization"].flatMap {
                reader.bool($0, "\(what) forward_authorization")
            }
            var mode = RouteMode.enforce
            if let node = fields["mode"], let text = reader.string(node, "\(what) mode") {
                if let value = RouteMode(rawValue: text) {
                    mode = value
                } else {
                    reader.error(.badValue, node, "\(what) mode must be 'enforce' or 'dry-run', found '\(text)'")
                }
            }
            guard let path else { continue }
            routes.append(
                RouteConfig(
                    name: name, location: location, path: path, methods: methods, hosts: hosts, auth: auth, scopes: scopes,
                    scopesAny: scopesAny, upstream: upstreamName, stripPrefix: stripPrefix,
                    forwardAuthorization: forwardAuthorization, mode: mode))
        }
        return routes
    }

    private static func readAuth(_ node: Node, _ what: String, _ reader: ConfigReader) -> RouteAuth? {
        let allowed = ["none", "optional", "bearer", "basic", "api_key"]
        if case .sequence = node {
            guard let list = reader.stringList(node, "\(what) auth") else { return nil }
            var schemes: [AuthScheme] = []
            for (text, itemNode) in list {
                if let scheme = AuthScheme(rawValue: text) {
                    if !schemes.contains(scheme) { schemes.append(scheme) }
                } else {
                    reader.error(.badValue, itemNode, "a list of auth schemes may hold bearer, basic and api_key; found '\(text)'")
                }
            }
            if list.isEmpty {
                reader.error(.badValue, node, "\(what) auth is an empty list; write 'none' for a public route")
                return nil
            }
            return .required(schemes)
        }
        guard let text = reader.string(node, "\(what) auth") else { return nil }
        switch text {
        case "none": return RouteAuth.none
        case "optional": return .optional
        default:
            if let scheme = AuthScheme(rawValue: text) { return .required([scheme]) }
            var message = "\(what) auth must be one of \(allowed.joined(separator: ", ")), found '\(text)'"
            if let suggestion = closestMatch(text, in: allowed) { message += "; did you mean '\(suggestion)'?" }
            reader.error(.badValue, node, message)
            return nil
        }
    }

    private static func readScopes(_ node: Node, _ what: String, _ reader: ConfigReader) -> [String]? {
        guard let list = reader.stringList(node, what) else { return nil }
        var scopes: [String] = []
        for (text, itemNode) in list {
            if BearerVerifier.isScopeToken(text) {
                scopes.append(text)
            } else {
                reader.error(.badValue, itemNode, "'\(text)' is not a valid scope (RFC 6749 §3.3)")
            }
        }
        return scopes
    }
}
