internal import Yams
import PortcullisCrypto

/// Turns the text of a `routes.yaml` into a validated ``GatewayConfig``.
///
/// Pure: the caller reads the file. Every problem is collected with its `FILE:LINE:COL`;
/// a file with any error yields no config at all, so a typo can never weaken a rule.
package enum ConfigLoader {
    package struct Result: Sendable {
        /// `nil` when ``diagnostics`` has errors.
        package var config: GatewayConfig?
        package var diagnostics: ConfigDiagnostics

        package init(config: GatewayConfig?, diagnostics: ConfigDiagnostics) {
            self.config = config
            self.diagnostics = diagnostics
        }
    }

    static let topLevelKeys = [
        "version", "server", "jwt", "users", "users_file", "api_keys", "token_endpoint", "upstreams", "routes",
        "decisions",
    ]
    static let serverKeys = [
        "listen", "admin_listen", "realm", "max_request_body", "idle_timeout", "request_header_timeout",
        "shutdown_grace", "merge_slashes", "trusted_proxies", "insufficient_scope_status", "identity_headers",
        "claim_headers",
        "access_log", "dry_run", "tls",
    ]
    static let upstreamKeys = ["url", "connect_timeout", "timeout", "preserve_host", "tls"]
    static let routeKeys = [
        "name", "match", "auth", "scopes", "scopes_any", "upstream", "strip_prefix", "forward_authorization", "mode",
        "issuers", "roles", "roles_any", "claims", "cors",
    ]

    /// The text without a leading UTF-8 byte-order mark, which YAML allows and Windows editors
    /// write; the parser would take it for content.
    static func withoutByteOrderMark(_ text: String) -> String {
        text.unicodeScalars.first == "\u{FEFF}" ? String(text.unicodeScalars.dropFirst()) : text
    }

    package static func load(text: String, file: String, environment: any ConfigEnvironment = FixedEnvironment()) -> Result {
        let reader = ConfigReader(file: file)
        guard let root = self.compose(text, reader) else { return Result(config: nil, diagnostics: reader.diagnostics) }
        let config = self.read(root, reader, environment)
        let diagnostics = reader.diagnostics
        return Result(config: diagnostics.hasErrors ? nil : config, diagnostics: diagnostics)
    }

    /// The tree of a YAML file, or nil with the problems recorded in `reader`: the structure
    /// check runs first, so the composer never sees a key it could not handle quickly.
    static func compose(_ text: String, _ reader: ConfigReader) -> Node? {
        let problems = YAMLStructureCheck.problems(in: text, file: reader.file)
        guard problems.isEmpty else {
            for problem in problems { reader.add(problem) }
            return nil
        }
        do {
            guard let root = try Yams.compose(yaml: ConfigLoader.withoutByteOrderMark(text), .basic) else {
                reader.add(ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: reader.file, line: 1, column: 1), "the file is empty"))
                return nil
            }
            return root
        } catch let error as YamlError {
            reader.add(syntaxDiagnostic(error, file: reader.file))
        } catch {
            reader.add(ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: reader.file, line: 1, column: 1), "\(error)"))
        }
        return nil
    }

    private static func read(_ root: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment) -> GatewayConfig? {
        guard let top = reader.mapping(root, "the configuration", keys: self.topLevelKeys) else { return nil }
        if let version = top.required("version", reader, "the configuration") {
            if case .scalar(let scalar) = version, scalar.string == "1", scalar.style == .plain {
            } else if case .scalar(let scalar) = version, scalar.string.count <= 8, scalar.style == .plain {
                reader.error(.badValue, version, "unsupported configuration version \(scalar.string); expected 1")
            } else {
                reader.error(.badValue, version, "the configuration version must be the number 1")
            }
        }
        var server = ServerConfig()
        if let node = top["server"] { server = self.readServer(node, reader, environment) }
        var decisions: DecisionsConfig?
        if let node = top["decisions"] { decisions = self.readDecisions(node, server: server, reader) }
        if server.listen == nil, decisions?.listen == nil, let node = top["server"]?.mapping?["listen"] {
            reader.error(.badValue, node, "server.listen is \"\", and no decisions.listen is set: the gateway would not listen at all")
        }
        var jwt = JWTConfig()
        if let node = top["jwt"] { jwt = self.readJWT(node, reader, environment) }
        var users: [UserConfig] = []
        if let node = top["users"] { users = self.readUsers(node, reader) }
        var tokenEndpoint: TokenEndpointConfig?
        if let node = top["token_endpoint"] {
            tokenEndpoint = self.readTokenEndpoint(node, reader, environment, mergeSlashes: server.mergeSlashes)
            if let endpoint = tokenEndpoint, !jwt.issuers.contains(where: { $0.issuer == endpoint.issuer }) {
                reader.error(
                    .unknownReference, top.keyNode("token_endpoint") ?? node,
                    "token_endpoint.issuer '\(endpoint.issuer)' must also be listed under jwt.issuers, or its tokens cannot be verified")
            } else if let endpoint = tokenEndpoint, reader.diagnostics.errors.isEmpty, let problem = Self.refusedOwnToken(endpoint, jwt) {
                let keyNode = node.mapping?["signing_key"] ?? node
                reader.error(.badValue, keyNode, "token_endpoint.signing_key: \(problem)")
            }
        }
        var apiKeys: [APIKeyConfig] = []
        if let node = top["api_keys"] { apiKeys = self.readAPIKeys(node, reader) }
        if let node = top["users_file"] {
            if top["users"] != nil {
                reader.error(.badValue, top.keyNode("users_file") ?? node, "give users or users_file, not both")
            } else if let path = reader.string(node, "users_file") {
                users = self.readUsersFile(path, node, reader, environment)
            }
        }
        var upstreams: [String: UpstreamConfig] = [:]
        // A decision-only gateway may have no upstream at all.
        if let node = decisions == nil ? top.required("upstreams", reader, "the configuration") : top["upstreams"] {
            upstreams = self.readUpstreams(node, reader, environment)
        }
        var routes: [RouteConfig] = []
        if let node = top.required("routes", reader, "the configuration") {
            routes = self.readRoutes(node, server: server, jwt: jwt, upstreams: upstreams, decisions: decisions, reader)
        }
        RouteChecks.reportShadowing(routes, reader)
        RouteChecks.reportOpenOverlaps(routes, reader)
        RouteChecks.reportUnreachableScopes(
            routes, users: users, apiKeys: apiKeys, issuers: jwt.issuers, localIssuer: tokenEndpoint?.issuer, reader)
        RouteChecks.reportUnusableSchemes(routes, users: users, apiKeys: apiKeys, issuers: jwt.issuers, reader)
        return GatewayConfig(
            file: reader.file, server: server, jwt: jwt, users: users, apiKeys: apiKeys, tokenEndpoint: tokenEndpoint,
            upstreams: upstreams,
            routes: routes, decisions: decisions)
    }

    /// Whether two listen addresses would take the same port (so the second could not bind).
    static func sharePort(_ one: ListenAddress, _ other: ListenAddress) -> Bool {
        guard one.port != 0, one.port == other.port else { return false }
        let wildcards: Set<String> = ["0.0.0.0", "::", "[::]", ""]
        // "localhost" binds a loopback address: it clashes with any loopback listener.
        func host(_ text: String) -> String {
            let lowered = text.lowercased()
            return ["localhost", "127.0.0.1", "::1"].contains(lowered) ? "loopback" : lowered
        }
        return host(one.host) == host(other.host) || wildcards.contains(one.host) || wildcards.contains(other.host)
    }

    /// `users_file`: the same list as `users`, in its own YAML file (a list, or `users:` with one).
    private static func readUsersFile(
        _ path: String, _ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment
    ) -> [UserConfig] {
        let resolved = environment.resolve(path)
        let text: String
        do {
            guard let valid = String(validating: try environment.readFile(resolved), as: UTF8.self) else {
                reader.error(.unreadableFile, node, "users_file \(resolved) is not valid UTF-8")
                return []
            }
            text = valid
        } catch {
            reader.error(.unreadableFile, node, "cannot read users_file \(resolved): \(error)")
            return []
        }
        let fileReader = ConfigReader(file: resolved)
        defer { for diagnostic in fileReader.diagnostics.all { reader.add(diagnostic) } }
        guard let root = self.compose(text, fileReader) else { return [] }
        if case .mapping = root {
            guard let fields = fileReader.mapping(root, "the users file", keys: ["users"]),
                let list = fields.required("users", fileReader, "the users file")
            else { return [] }
            return self.readUsers(list, fileReader)
        }
        return self.readUsers(root, fileReader)
    }

    // MARK: server

    private static func readServer(_ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment) -> ServerConfig {
        var server = ServerConfig()
        guard let fields = reader.mapping(node, "server", keys: self.serverKeys) else { return server }
        if let value = fields["listen"], let text = reader.string(value, "server.listen", allowEmpty: true) {
            if text.isEmpty {
                server.listen = nil  // a decision-only gateway: checked against `decisions` in read()
            } else if let address = ScalarParsers.listenAddress(text) {
                server.listen = ListenAddress(host: address.host, port: address.port)
            } else {
                reader.error(
                    .badValue, value,
                    "server.listen: '\(text)' is not HOST:PORT (use [::]:8080 for IPv6), or \"\" for a decision-only gateway")
            }
        }
        if let value = fields["admin_listen"], let text = reader.string(value, "server.admin_listen", allowEmpty: true) {
            if text.isEmpty {
                server.adminListen = nil
            } else if let address = ScalarParsers.listenAddress(text) {
                server.adminListen = ListenAddress(host: address.host, port: address.port)
            } else {
                reader.error(.badValue, value, "server.admin_listen: '\(text)' is not HOST:PORT, or \"\" to disable it")
            }
            // Both listeners on one port cannot bind: the second would stop the start.
            if let admin = server.adminListen, let listen = server.listen, Self.sharePort(admin, listen) {
                reader.error(.badValue, value, "server.admin_listen \(admin) would take the port of server.listen \(listen)")
            }
        }
        if let value = fields["realm"], let realm = reader.string(value, "server.realm") {
            if realm.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
                server.realm = realm
            } else {
                reader.error(.badValue, value, "server.realm may only hold printable ASCII without quotes or backslashes")
            }
        }
        if let value = fields["max_request_body"], let size = reader.size(value, "server.max_request_body") {
            server.maxRequestBody = size
        }
        if let value = fields["idle_timeout"], let duration = reader.duration(value, "server.idle_timeout") {
            server.idleTimeout = duration
        }
        if let value = fields["request_header_timeout"],
            let duration = reader.duration(value, "server.request_header_timeout")
        {
            server.requestHeaderTimeout = duration
        }
        if let value = fields["shutdown_grace"], let duration = reader.duration(value, "server.shutdown_grace", allowZero: true) {
            server.shutdownGrace = duration
        }
        if let value = fields["merge_slashes"], let flag = reader.bool(value, "server.merge_slashes") {
            server.mergeSlashes = flag
        }
        if let value = fields["dry_run"], let flag = reader.bool(value, "server.dry_run") {
            server.dryRun = flag
        }
        if let value = fields["trusted_proxies"], let items = reader.stringList(value, "server.trusted_proxies") {
            for (text, itemNode) in items {
                if let cidr = CIDR(text) {
                    server.trustedProxies.append(cidr)
                } else {
                    reader.error(.badValue, itemNode, "'\(text)' is not an IP address or CIDR block")
                }
            }
        }
        if let value = fields["insufficient_scope_status"],
            let status = reader.integer(value, "server.insufficient_scope_status", range: 100...599)
        {
            if status == 401 || status == 403 {
                server.insufficientScopeStatus = status
            } else {
                reader.error(.badValue, value, "server.insufficient_scope_status must be 403 or 401")
            }
        }
        if let value = fields["identity_headers"] {
            server.identityHeaders = self.readIdentityHeaders(value, reader)
        }
        if let value = fields["claim_headers"] {
            server.claimHeaders = self.readClaimHeaders(value, identity: server.identityHeaders, reader)
        }
        if let value = fields["access_log"], let text = reader.string(value, "server.access_log") {
            switch text {
            case "stdout": server.accessLog = .stdout
            case "off": server.accessLog = .off
            default:
                server.accessLog = .file(text)
                let resolved = environment.resolve(text)
                if let problem = environment.problemAppending(to: resolved) {
                    reader.error(.unreadableFile, value, "cannot write the access log \(resolved): \(problem)")
                }
            }
        }
        if let value = fields["tls"], let tls = reader.mapping(value, "server.tls", keys: ["cert_file", "key_file"]) {
            let cert = tls.required("cert_file", reader, "server.tls").flatMap { reader.string($0, "server.tls.cert_file") }
            let key = tls.required("key_file", reader, "server.tls").flatMap { reader.string($0, "server.tls.key_file") }
            if let cert, let key {
                var contents: [String: [UInt8]] = [:]
                for (file, key) in [(cert, "cert_file"), (key, "key_file")] {
                    let path = environment.resolve(file)
                    do {
                        contents[key] = try environment.readFile(path)
                    } catch {
                        if let node = tls[key] { reader.error(.unreadableFile, node, "cannot read server.tls.\(key) \(path): \(error)") }
                    }
                }
                Self.checkTLSPair(
                    certificate: contents["cert_file"], key: contents["key_file"],
                    certificateNode: tls["cert_file"], keyNode: tls["key_file"], what: "server.tls", reader)
                server.tls = TLSFiles(certFile: environment.resolve(cert), keyFile: environment.resolve(key))
            }
        }
        return server
    }

    private static func readIdentityHeaders(_ node: Node, _ reader: ConfigReader) -> IdentityHeaders {
        var headers = IdentityHeaders()
        guard let fields = reader.mapping(node, "server.identity_headers", keys: ["subject", "scopes", "method", "roles"]) else {
            return headers
        }
        func name(_ key: String) -> String? {
            guard let value = fields[key] else { return nil }
            return Self.identityHeaderName(value, "server.identity_headers.\(key)", reader)
        }
        if let value = name("subject") { headers.subject = value }
        if let value = name("scopes") { headers.scopes = value }
        if let value = name("method") { headers.method = value }
        if let value = name("roles") { headers.roles = value }
        let names = [("subject", headers.subject), ("scopes", headers.scopes), ("method", headers.method), ("roles", headers.roles)]
        for (index, (key, header)) in names.enumerated() {
            if let earlier = names[..<index].first(where: { $0.1.lowercased() == header.lowercased() }) {
                reader.error(.duplicateName, fields[key] ?? node, "'\(header)' is already the \(earlier.0) header")
            }
        }
        return headers
    }

    /// A header name the gateway may set from a credential: a valid token, and none with a
    /// meaning of its own (a subject of "5" in Content-Length would frame the upstream request).
    private static func identityHeaderName(_ value: Node, _ what: String, _ reader: ConfigReader) -> String? {
        guard let text = reader.string(value, what) else { return nil }
        guard HeaderName.isToken(text) else {
            reader.error(.badValue, value, "'\(text)' is not a valid header name")
            return nil
        }
        guard !IdentityHeaders.reservedNames.contains(text.lowercased()) else {
            reader.error(.badValue, value, "'\(text)' has a meaning of its own in HTTP or to the gateway; choose another name")
            return nil
        }
        return text
    }

    /// `claim_headers`: `Header-Name: claim.path`, in the order written.
    private static func readClaimHeaders(_ node: Node, identity: IdentityHeaders, _ reader: ConfigReader) -> [ClaimHeader] {
        guard case .mapping(let mapping) = node else {
            reader.error(.wrongType, node, "server.claim_headers must be a mapping of header names to claim paths, found \(describe(node))")
            return []
        }
        var headers: [ClaimHeader] = []
        for (keyNode, value) in mapping {
            guard let name = Self.identityHeaderName(keyNode, "a claim_headers name", reader),
                let text = reader.string(value, "server.claim_headers.\(name)")
            else { continue }
            let taken = identity.all.contains { $0.lowercased() == name.lowercased() }
            if taken || headers.contains(where: { $0.name.lowercased() == name.lowercased() }) {
                reader.error(.duplicateName, keyNode, "'\(name)' is already \(taken ? "an identity header" : "a claim header")")
                continue
            }
            guard let path = ClaimPath(text) else {
                reader.error(.badValue, value, "'\(text)' is not a claim path (dot-separated names; quote a name with a dot: \"https://example.com/roles\")")
                continue
            }
            headers.append(ClaimHeader(name: name, path: path))
        }
        return headers
    }

    // MARK: upstreams

    private static func readUpstreams(
        _ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment
    ) -> [String: UpstreamConfig] {
        guard case .mapping(let mapping) = node else {
            reader.error(.wrongType, node, "upstreams must be a mapping of names to upstreams")
            return [:]
        }
        var upstreams: [String: UpstreamConfig] = [:]
        for (keyNode, value) in mapping {
            guard let name = reader.string(keyNode, "an upstream name") else { continue }
            let what = "upstream '\(name)'"
            guard let fields = reader.mapping(value, what, keys: self.upstreamKeys) else { continue }
            guard let urlNode = fields.required("url", reader, what), let url = reader.string(urlNode, "\(what) url") else {
                continue
            }
            guard let target = self.upstreamTarget(url) else {
                reader.error(
                    .badValue, urlNode,
                    "\(what): '\(url)' is not an upstream URL (http://host:port, https://host:port or unix:/path/to.sock)")
                continue
            }
            var upstream = UpstreamConfig(name: name, url: url, target: target, location: reader.location(keyNode))
            if let node = fields["connect_timeout"], let value = reader.duration(node, "\(what) connect_timeout") {
                upstream.connectTimeout = value
            }
            if let node = fields["timeout"], let value = reader.duration(node, "\(what) timeout") {
                upstream.timeout = value
            }
            if let node = fields["preserve_host"], let value = reader.bool(node, "\(what) preserve_host") {
                upstream.preserveHost = value
            }
            if let node = fields["tls"],
                let tls = reader.mapping(node, "\(what) tls", keys: ["ca_file", "client_cert_file", "client_key_file"])
            {
                var files = UpstreamTLS()
                files.caFile = tls["ca_file"].flatMap { reader.string($0, "\(what) tls.ca_file") }
                files.clientCertFile = tls["client_cert_file"].flatMap { reader.string($0, "\(what) tls.client_cert_file") }
                files.clientKeyFile = tls["client_key_file"].flatMap { reader.string($0, "\(what) tls.client_key_file") }
                if (files.clientCertFile == nil) != (files.clientKeyFile == nil) {
                    reader.error(.badValue, node, "\(what) tls needs both client_cert_file and client_key_file, or neither")
                }
                // Files the gateway cannot read would fail every request with 502; say so now.
                var contents: [String: [UInt8]] = [:]
                for (key, file) in [("ca_file", files.caFile), ("client_cert_file", files.clientCertFile), ("client_key_file", files.clientKeyFile)] {
                    guard let file else { continue }
                    let path = environment.resolve(file)
                    do {
                        contents[key] = try environment.readFile(path)
                    } catch {
                        if let node = tls[key] { reader.error(.unreadableFile, node, "cannot read \(what) tls.\(key) \(path): \(error)") }
                    }
                }
                if let caFile = files.caFile, let bytes = contents["ca_file"],
                    let problem = TLSMaterial.certificateProblem(bytes), let node = tls["ca_file"]
                {
                    reader.error(.badValue, node, "\(what) tls.ca_file \(caFile): \(problem)")
                }
                if files.clientCertFile != nil, files.clientKeyFile != nil {
                    Self.checkTLSPair(
                        certificate: contents["client_cert_file"],
                        key: contents["client_key_file"], certificateNode: tls["client_cert_file"],
                        keyNode: tls["client_key_file"], what: "\(what) tls", reader)
                }
                // TLS options on a plain-text upstream would silently not apply.
                if !url.lowercased().hasPrefix("https://") {
                    reader.error(.badValue, node, "\(what) tls applies to https:// upstreams only")
                }
                upstream.tls = files
            }
            upstreams[name] = upstream
        }
        return upstreams
    }

    static func upstreamTarget(_ url: String) -> UpstreamConfig.Target? {
        if url.hasPrefix("unix:") {
            let path = String(url.dropFirst(5))
            guard path.hasPrefix("/"), path.count > 1 else { return nil }
            return .unixSocket(path: path)
        }
        let lowered = url.lowercased()
        let scheme: String
        if lowered.hasPrefix("http://") {
            scheme = "http://"
        } else if lowered.hasPrefix("https://") {
            scheme = "https://"
        } else {
            return nil
        }
        let rest = url.dropFirst(scheme.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var basePath = String(rest[slash...])
        guard !authority.isEmpty, !authority.contains("@"), !authority.contains("?"), !authority.contains("#"),
            !basePath.contains("?"), !basePath.contains("#"),
            authority.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        while basePath.hasSuffix("/") { basePath.removeLast() }
        // host, host:port, [v6] or [v6]:port, with a port from 1 to 65535.
        let host = String(authority)
        let hasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
        guard let parsed = ScalarParsers.listenAddress(hasPort ? host : host + ":80"), parsed.port > 0 else { return nil }
        // The base path goes out as written: it must be a path a server can take.
        if !basePath.isEmpty, case .failure = RequestTarget.normalize(basePath, mergeSlashes: false, shortcut: false) { return nil }
        return .http(origin: scheme + authority, basePath: basePath)
    }

    /// Why the gateway would refuse the tokens it issues, or `nil`: a probe token is minted with
    /// the signing key and verified as a request's would be. A key id, algorithm, secret or
    /// audience the issuer's entry does not share otherwise shows only as 401s after each login.
    static func refusedOwnToken(_ endpoint: TokenEndpointConfig, _ jwt: JWTConfig) -> String? {
        var probeJWT = jwt
        probeJWT.cacheSize = 0
        let config = GatewayConfig(
            file: "", server: ServerConfig(), jwt: probeJWT, users: [], apiKeys: [], tokenEndpoint: nil, upstreams: [:], routes: [])
        let now = 2_000_000_000.0
        guard let token = try? TokenMinter.mint(endpoint, subject: "probe", scopes: [], ttlSeconds: 60, now: now) else {
            return "the key cannot sign with \(endpoint.signingAlgorithm.rawValue)"
        }
        switch BearerVerifier(config: config).verify(Substring(token), now: now) {
        case .success:
            return nil
        case .failure(.unknownKeyID(_, let issuer)) where jwt.issuers.first(where: { $0.issuer == issuer })?.jwksURL != nil:
            return nil  // its jwks_url may publish the key: only a fetch can tell
        case .failure(let rejection):
            return "the gateway would refuse its own tokens (\(rejection.errorDescription.lowercased()) for issuer '\(endpoint.issuer)'); give it the kid, algorithm and key of an entry of that issuer"
        }
    }

    /// Whether a literal path is already what normalization makes of a request path, so that
    /// a normalized request can equal it.
    static func isNormalPath(_ path: String, mergeSlashes: Bool) -> Bool {
        guard case .success(let target) = RequestTarget.normalize(path, mergeSlashes: mergeSlashes, shortcut: false) else { return false }
        return target.query == nil && target.path == path
    }

    /// How a request for `path` is normalized, or why it is refused, for messages.
    static func normalForm(_ path: String, mergeSlashes: Bool) -> String {
        switch RequestTarget.normalize(path, mergeSlashes: mergeSlashes, shortcut: false) {
        case .success(let target) where target.query != nil: return "a query is not part of a path"
        case .success(let target): return "a request for it arrives as '\(target.path)'"
        case .failure(let refusal): return "every request for it is refused: \(refusal.detail)"
        }
    }

    static func patternMessage(_ error: PathPattern.ParseError) -> String {
        switch error {
        case .mustStartWithSlash: return "it must start with '/'"
        case .restNotLast: return "'**' may only be the last segment"
        case .badName(let name): return "'\(name)' is not a valid {name} segment"
        case .dotSegment: return "'.' and '..' segments can never match a normalized path"
        case .emptySegment: return "an empty segment ('//') can never match while merge_slashes is on"
        case .badCharacter(let character): return "the character '\(character)' cannot appear in a normalized path"
        case .refusedEscape(let reason): return "it can never match: every request path with it is refused (\(reason))"
        }
    }

    /// A certificate and its key, both read: the certificate must be PEM and the key its own.
    private static func checkTLSPair(
        certificate: [UInt8]?, key: [UInt8]?, certificateNode: Node?, keyNode: Node?, what: String, _ reader: ConfigReader
    ) {
        guard let certificate, let key else { return }  // unreadable: reported already
        if let problem = TLSMaterial.certificateProblem(certificate) {
            if let node = certificateNode { reader.error(.badValue, node, "\(what) certificate: \(problem)") }
            return
        }
        if let problem = TLSMaterial.keyProblem(certificate: certificate, key: key), let node = keyNode {
            reader.error(.badValue, node, "\(what) key: \(problem)")
        }
    }

    private static func syntaxDiagnostic(_ error: YamlError, file: String) -> ConfigDiagnostic {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigDiagnostic(.error, .syntax, at: at(mark), "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // The structure check reports repeats first; this is what the composer still finds.
            return ConfigDiagnostic(.error, .syntax, at: at(context.mark), "duplicate key '\(duplicates.first ?? "?")' in a mapping")
        case .reader(let problem, _, _, _):
            return ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: file, line: 1, column: 1), "unreadable YAML: \(problem)")
        default:
            return ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: file, line: 1, column: 1), "YAML: \(error)")
        }
    }
}

/// HTTP header-name syntax (RFC 9110 §5.1 token).
package enum HeaderName {
    package static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }
}
