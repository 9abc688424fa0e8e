import PortcullisCrypto
internal import Yams

/// `routes:`: what each route matches, who may pass, and where it forwards.
extension ConfigLoader {
    static let routeKeys = [
        "name", "match", "auth", "scopes", "scopes_any", "upstream", "strip_prefix", "forward_authorization", "mode",
        "issuers", "roles", "roles_any", "claims", "cors",
    ]

    /// - Parameter mergeSlashes: `server.merge_slashes`, which decides what a path pattern can match.
    static func readRoutes(_ node: Node, mergeSlashes: Bool, _ reader: ConfigReader) -> [RouteDraft] {
        guard let items = reader.sequence(node, "routes") else { return [] }
        var drafts: [RouteDraft] = []
        var seen: [String: SourceLocation] = [:]
        for item in items {
            guard let opened = reader.mapping(item, "a route", keys: self.routeKeys) else { continue }
            guard let name = opened.string("name", "route name", required: true), let nameNode = opened["name"] else { continue }
            let what = "route '\(name)'"
            let fields = opened.named(what)
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
            if let match = fields.mapping("match", keys: ["path", "methods", "hosts"], required: true) {
                if let text = match.string("path", required: true), let pathNode = match["path"] {
                    do {
                        path = try PathPattern(text, mergeSlashes: mergeSlashes)
                    } catch {
                        reader.error(.badValue, pathNode, "\(what): bad path pattern '\(text)': \(patternMessage(error))")
                    }
                }
                if let list = match.stringList("methods"), let methodsNode = match["methods"] {
                    methods = self.readMethods(list, methodsNode, what, reader)
                }
                if let list = match.stringList("hosts"), let hostsNode = match["hosts"] {
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
            // Whether it names a known upstream, or may name none, depends on other sections.
            var draft = RouteDraft(fields: fields, upstream: fields.string("upstream"))
            var stripPrefix: String?
            if let text = fields.string("strip_prefix"), let node = fields["strip_prefix"] {
                var prefix = text
                while prefix.count > 1 && prefix.hasSuffix("/") { prefix.removeLast() }
                if !prefix.hasPrefix("/") || prefix.contains("*") || prefix.contains("{") {
                    reader.error(.badValue, node, "\(what) strip_prefix must be a literal path starting with '/'")
                } else if !Self.isNormalPath(prefix, mergeSlashes: mergeSlashes) {
                    reader.error(.badValue, node, "\(what) strip_prefix '\(text)' can never match: request paths are normalized before matching (\(Self.normalForm(prefix, mergeSlashes: mergeSlashes)))")
                } else {
                    stripPrefix = prefix == "/" ? nil : prefix
                }
            }
            let forwardAuthorization = fields.bool("forward_authorization")
            var mode = RouteMode.enforce
            if let text = fields.string("mode"), let node = fields["mode"] {
                if let value = RouteMode(rawValue: text) {
                    mode = value
                } else {
                    reader.error(.badValue, node, "\(what) mode must be 'enforce' or 'dry-run', found '\(text)'")
                }
            }
            if let path {
                var route = RouteConfig(
                    name: name, location: location, path: path, methods: methods, hosts: hosts, auth: auth, scopes: scopes,
                    scopesAny: scopesAny, upstream: draft.upstream, stripPrefix: stripPrefix,
                    forwardAuthorization: forwardAuthorization, mode: mode)
                draft.issuers = self.readTokenRules(fields, into: &route, reader)
                if let node = fields["cors"] { route.cors = self.readCORS(node, what, reader) }
                draft.route = route
            }
            drafts.append(draft)
        }
        return drafts
    }

    private static func readMethods(_ list: [(String, Node)], _ methodsNode: Node, _ what: String, _ reader: ConfigReader) -> MethodSet {
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
        return MethodSet(methods: set)
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

    /// The rules a route sets on tokens (contract §10): `issuers`, `roles`, `roles_any`, `claims`.
    /// Returns `issuers` as written: which of them exist is known only once `jwt` is read.
    private static func readTokenRules(
        _ fields: ConfigFields, into route: inout RouteConfig, _ reader: ConfigReader
    ) -> [(name: String, node: Node)] {
        let what = fields.name
        var issuers: [(name: String, node: Node)] = []
        if let list = fields.stringList("issuers"), let node = fields["issuers"] {
            if list.isEmpty { reader.error(.badValue, node, "\(what) issuers is empty: leave the key out to accept any issuer") }
            issuers = list.map { (name: $0.0, node: $0.1) }
        }
        route.roles = fields["roles"].flatMap { self.readRoles($0, "\(what) roles", reader) } ?? []
        route.rolesAny = fields["roles_any"].flatMap { self.readRoles($0, "\(what) roles_any", reader) } ?? []
        if let items = fields.list("claims") {
            for item in items {
                if let condition = self.readClaimCondition(item, what, reader) { route.claims.append(condition) }
            }
        }
        let ruleKey = ["issuers", "roles", "roles_any", "claims"].first { fields.has($0) }
        guard let ruleKey, let keyNode = fields.keyNode(ruleKey) else { return issuers }
        let acceptsBearer: Bool
        switch route.auth {
        case .none:
            reader.error(.badValue, keyNode, "\(what) has auth: none, so its \(ruleKey) could never be checked")
            return issuers
        case .optional: acceptsBearer = true
        case .required(let schemes): acceptsBearer = schemes.contains(.bearer)
        }
        if !acceptsBearer {
            reader.warning(.badValue, keyNode, "\(what) takes no Bearer tokens, and only tokens carry \(ruleKey): the route can never be passed")
        }
        return issuers
    }

    private static func readRoles(_ node: Node, _ what: String, _ reader: ConfigReader) -> [String]? {
        guard let list = reader.stringList(node, what) else { return nil }
        var roles: [String] = []
        for (text, itemNode) in list {
            if BearerVerifier.isScopeToken(text) {
                roles.append(text)
            } else {
                reader.error(.badValue, itemNode, "'\(text)' is not a valid role name (the characters of a scope, RFC 6749 §3.3)")
            }
        }
        return roles
    }

    static let claimOperators = ["equals", "in", "contains", "present"]

    private static func readClaimCondition(_ node: Node, _ what: String, _ reader: ConfigReader) -> ClaimCondition? {
        guard let fields = reader.mapping(node, "a claim condition of \(what)", keys: ["claim"] + Self.claimOperators) else {
            return nil
        }
        guard let text = fields.string("claim", "\(what) claims[].claim", required: true), let claimNode = fields["claim"]
        else { return nil }
        guard let path = ClaimPath(text) else {
            reader.error(.badValue, claimNode, "'\(text)' is not a claim path (dot-separated names; quote a name with a dot)")
            return nil
        }
        let operators = Self.claimOperators.filter { fields.has($0) }
        guard operators.count == 1, let name = operators.first, let valueNode = fields[name] else {
            reader.error(
                .badValue, node,
                operators.isEmpty
                    ? "the condition on '\(text)' needs one of \(Self.claimOperators.joined(separator: ", "))"
                    : "the condition on '\(text)' has several operators (\(operators.joined(separator: ", "))); write one condition each")
            return nil
        }
        let location = reader.location(node)
        switch name {
        case "present":
            guard let wanted = reader.bool(valueNode, "\(what) claims[].present") else { return nil }
            return ClaimCondition(path: path, test: .present(wanted), location: location)
        case "in":
            guard let items = reader.sequence(valueNode, "\(what) claims[].in") else { return nil }
            let values = items.compactMap { self.scalarJSON($0, "\(what) claims[].in", reader) }
            guard values.count == items.count else { return nil }
            if values.isEmpty { reader.error(.badValue, valueNode, "the condition on '\(text)' lists no values: it could never hold") }
            return ClaimCondition(path: path, test: .oneOf(values), location: location)
        default:
            guard let value = self.scalarJSON(valueNode, "\(what) claims[].\(name)", reader) else { return nil }
            return ClaimCondition(path: path, test: name == "equals" ? .equals(value) : .contains(value), location: location)
        }
    }

    /// A YAML scalar as the JSON value a claim is compared with: plain `true`/`false` are
    /// booleans, plain numbers are numbers, everything else (and anything quoted) a string.
    static func scalarJSON(_ node: Node, _ what: String, _ reader: ConfigReader) -> JSONValue? {
        guard case .scalar(let scalar) = node else {
            reader.error(.wrongType, node, "\(what) must be a string, number or boolean, found \(describe(node))")
            return nil
        }
        if scalar.style == .plain {
            switch scalar.string {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default:
                if let number = Double(scalar.string), scalar.string.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) {
                    return .number(number)
                }
                if isNull(node) {
                    reader.error(.badValue, node, "\(what) cannot be null: use present: false for an absent claim")
                    return nil
                }
            }
        }
        return .string(scalar.string)
    }

    /// A YAML tree as JSON: mappings are objects (plain-string keys), sequences arrays, scalars
    /// as ``scalarJSON(_:_:_:)`` reads them, and a plain `null` is JSON `null`.
    static func jsonValue(_ node: Node, _ what: String, _ reader: ConfigReader) -> JSONValue? {
        switch node {
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode else {
                    reader.error(.wrongType, keyNode, "keys in \(what) must be plain strings")
                    return nil
                }
                guard let member = self.jsonValue(value, what, reader) else { return nil }
                members[key.string] = member
            }
            return .object(members)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for item in sequence {
                guard let value = self.jsonValue(item, what, reader) else { return nil }
                items.append(value)
            }
            return .array(items)
        default:
            if isNull(node) { return .null }
            return self.scalarJSON(node, what, reader)
        }
    }

    private static func readCORS(_ node: Node, _ what: String, _ reader: ConfigReader) -> CORSConfig? {
        let keys = ["allow_origins", "allow_methods", "allow_headers", "max_age"]
        guard let fields = reader.mapping(node, "\(what) cors", keys: keys) else { return nil }
        guard let origins = fields.stringList("allow_origins", required: true), let originsNode = fields["allow_origins"]
        else { return nil }
        if origins.isEmpty { reader.error(.badValue, originsNode, "\(what) cors.allow_origins is empty: no browser could use it") }
        for (origin, itemNode) in origins where origin != "*" {
            let lower = origin.lowercased()
            if !(lower.hasPrefix("https://") || lower.hasPrefix("http://")) || origin.hasSuffix("/")
                || origin.dropFirst(8).contains("/")
            {
                reader.error(.badValue, itemNode, "'\(origin)' is not an origin (scheme://host[:port], as a browser sends it)")
            }
        }
        if origins.count > 1 && origins.contains(where: { $0.0 == "*" }) {
            reader.error(.badValue, originsNode, "\(what) cors.allow_origins: '*' stands alone")
        }
        var methods = ["GET", "HEAD", "POST"]
        if let list = fields.stringList("allow_methods") {
            methods = list.map(\.0)
            for (method, itemNode) in list where !Policy.servedMethods.contains(method) {
                reader.error(.badValue, itemNode, "'\(method)' is not a method the gateway serves")
            }
        }
        var headers: [String] = []
        if let list = fields.stringList("allow_headers") {
            headers = list.map(\.0)
            for (header, itemNode) in list where !HeaderName.isToken(header) {
                reader.error(.badValue, itemNode, "'\(header)' is not a header name")
            }
        }
        let maxAge = fields.duration("max_age", allowZero: true)
        return CORSConfig(allowOrigins: origins.map(\.0), allowMethods: methods, allowHeaders: headers, maxAge: maxAge)
    }
}
