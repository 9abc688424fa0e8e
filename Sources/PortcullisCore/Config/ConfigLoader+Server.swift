internal import Yams

/// `server:`: listeners, limits, timeouts, identity headers, the access log and TLS.
extension ConfigLoader {
    static let serverKeys = [
        "listen", "admin_listen", "realm", "max_request_body", "idle_timeout", "request_header_timeout",
        "shutdown_grace", "merge_slashes", "trusted_proxies", "insufficient_scope_status", "identity_headers",
        "claim_headers",
        "access_log", "dry_run", "tls",
    ]

    static func readServer(_ node: Node, _ reader: ConfigReader) -> ServerSection {
        var section = ServerSection()
        guard let fields = reader.mapping(node, "server", keys: self.serverKeys) else { return section }
        if let text = fields.string("listen", allowEmpty: true), let value = fields["listen"] {
            section.listenNode = value
            if text.isEmpty {
                section.config.listen = nil  // a decision-only gateway: needs decisions.listen
            } else if let address = ScalarParsers.listenAddress(text) {
                section.config.listen = ListenAddress(host: address.host, port: address.port)
            } else {
                reader.error(
                    .badValue, value,
                    "server.listen: '\(text)' is not HOST:PORT (use [::]:8080 for IPv6), or \"\" for a decision-only gateway")
            }
        }
        if let text = fields.string("admin_listen", allowEmpty: true), let value = fields["admin_listen"] {
            section.adminListenNode = value
            if text.isEmpty {
                section.config.adminListen = nil
            } else if let address = ScalarParsers.listenAddress(text) {
                section.config.adminListen = ListenAddress(host: address.host, port: address.port)
            } else {
                reader.error(.badValue, value, "server.admin_listen: '\(text)' is not HOST:PORT, or \"\" to disable it")
            }
        }
        if let realm = fields.string("realm"), let value = fields["realm"] {
            if realm.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
                section.config.realm = realm
            } else {
                reader.error(.badValue, value, "server.realm may only hold printable ASCII without quotes or backslashes")
            }
        }
        if let size = fields.size("max_request_body") { section.config.maxRequestBody = size }
        if let duration = fields.duration("idle_timeout") { section.config.idleTimeout = duration }
        if let duration = fields.duration("request_header_timeout") { section.config.requestHeaderTimeout = duration }
        if let duration = fields.duration("shutdown_grace", allowZero: true) { section.config.shutdownGrace = duration }
        if let flag = fields.bool("merge_slashes") { section.config.mergeSlashes = flag }
        if let flag = fields.bool("dry_run") { section.config.dryRun = flag }
        if let items = fields.stringList("trusted_proxies") {
            section.config.trustedProxies = self.cidrs(items, reader)
        }
        if let status = fields.integer("insufficient_scope_status", range: 100...599), let value = fields["insufficient_scope_status"] {
            if status == 401 || status == 403 {
                section.config.insufficientScopeStatus = status
            } else {
                reader.error(.badValue, value, "server.insufficient_scope_status must be 403 or 401")
            }
        }
        if let value = fields["identity_headers"] {
            section.config.identityHeaders = self.readIdentityHeaders(value, reader)
        }
        if let value = fields["claim_headers"] {
            section.config.claimHeaders = self.readClaimHeaders(value, identity: section.config.identityHeaders, reader)
        }
        if let text = fields.string("access_log"), let value = fields["access_log"] {
            switch text {
            case "stdout": section.config.accessLog = .stdout
            case "off": section.config.accessLog = .off
            default:
                let resolved = reader.resolve(text)
                section.config.accessLog = .file(resolved)
                if let problem = reader.environment.problemAppending(to: resolved) {
                    reader.error(.unreadableFile, value, "cannot write the access log \(resolved): \(problem)")
                }
            }
        }
        if let tls = fields.mapping("tls", keys: ["cert_file", "key_file"]) {
            let certificate = tls.path("cert_file", required: true)
            let key = tls.path("key_file", required: true)
            if let certificate, let key {
                section.tls = (certificate, key)
                section.config.tls = TLSFiles(certFile: certificate.resolved, keyFile: key.resolved)
            }
        }
        return section
    }

    /// IP addresses and CIDR blocks, each refused at its own place.
    static func cidrs(_ items: [(String, Node)], _ reader: ConfigReader) -> [CIDR] {
        var blocks: [CIDR] = []
        for (text, itemNode) in items {
            if let cidr = CIDR(text) {
                blocks.append(cidr)
            } else {
                reader.error(.badValue, itemNode, "'\(text)' is not an IP address or CIDR block")
            }
        }
        return blocks
    }

    private static func readIdentityHeaders(_ node: Node, _ reader: ConfigReader) -> IdentityHeaders {
        var headers = IdentityHeaders()
        guard let fields = reader.mapping(node, "server.identity_headers", keys: ["subject", "scopes", "method", "roles"]) else {
            return headers
        }
        func name(_ key: String) -> String? {
            guard let value = fields[key] else { return nil }
            return Self.identityHeaderName(value, fields.label(key), reader)
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
}
