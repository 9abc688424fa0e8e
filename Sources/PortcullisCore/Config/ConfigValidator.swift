import PortcullisCrypto
internal import Yams

/// The second pass of loading: every check that needs more than one field, run once all the
/// sections are read, so that no finding depends on where in the file a section is written.
///
/// The checks run in a fixed order (listeners and their TLS files, the token endpoint, the
/// upstreams, the routes, then the routes against each other), which is the order their
/// findings are recorded in.
enum ConfigValidator {
    /// The probe token of ``refusedOwnToken(_:_:)`` is minted only when these sections and the
    /// listeners have no error: a key or issuer that failed to load would make it fail for a
    /// reason already reported.
    static let probeInputs: Set<ConfigSections.Section> = [.top, .server, .decisions, .jwt, .users, .tokenEndpoint]

    static func validate(_ sections: ConfigSections, _ reader: ConfigReader) -> GatewayConfig {
        let errorsBeforeListeners = reader.errorCount
        self.checkListeners(sections, reader)
        let probe = reader.errorCount == errorsBeforeListeners && sections.withErrors.isDisjoint(with: self.probeInputs)
        if let endpoint = sections.tokenEndpoint {
            self.checkTokenEndpoint(endpoint, sections, probe: probe, reader)
        }
        let top = sections.top
        let decisions = sections.decisions?.config
        // A decision-only gateway may have no upstream at all.
        if decisions == nil && !top.has("upstreams") { _ = top.required("upstreams") }
        for tls in sections.upstreams.tls { self.checkUpstreamTLS(tls, reader) }
        if !top.has("routes") { _ = top.required("routes") }
        let routes = self.checkRoutes(sections, reader)
        let jwt = sections.jwt
        RouteChecks.reportShadowing(routes, reader)
        RouteChecks.reportOpenOverlaps(routes, reader)
        RouteChecks.reportUnreachableScopes(
            routes, users: sections.users, apiKeys: sections.apiKeys, issuers: jwt.issuers,
            localIssuer: sections.tokenEndpoint?.config.issuer, reader)
        RouteChecks.reportUnusableSchemes(routes, users: sections.users, apiKeys: sections.apiKeys, issuers: jwt.issuers, reader)
        return GatewayConfig(
            file: reader.file, server: sections.server.config, jwt: jwt, users: sections.users, apiKeys: sections.apiKeys,
            tokenEndpoint: sections.tokenEndpoint?.config, upstreams: sections.upstreams.upstreams, routes: routes,
            decisions: decisions)
    }

    // MARK: listeners

    /// Listeners that would share a port (the second could not bind and would stop the start),
    /// the server's TLS files, and a gateway that would listen nowhere.
    private static func checkListeners(_ sections: ConfigSections, _ reader: ConfigReader) {
        let server = sections.server.config
        if let node = sections.server.adminListenNode, let admin = server.adminListen, let listen = server.listen,
            self.sharePort(admin, listen)
        {
            reader.error(.badValue, node, "server.admin_listen \(admin) would take the port of server.listen \(listen)")
        }
        if let tls = sections.server.tls {
            let (certificate, key) = tls
            let contents = self.read([("cert_file", certificate), ("key_file", key)], what: "server.tls.", reader)
            self.checkTLSPair(
                certificate: contents["cert_file"], key: contents["key_file"], certificateNode: certificate.node, keyNode: key.node,
                what: "server.tls", reader)
        }
        if let listen = sections.decisions?.listen {
            let (address, node) = listen
            for (other, name) in [(server.listen, "server.listen"), (server.adminListen, "server.admin_listen")] {
                if let other, self.sharePort(address, other) {
                    reader.error(.badValue, node, "decisions.listen \(address) would take the port of \(name) \(other)")
                }
            }
        }
        if server.listen == nil, sections.decisions?.config?.listen == nil, let node = sections.server.listenNode {
            reader.error(.badValue, node, "server.listen is \"\", and no decisions.listen is set: the gateway would not listen at all")
        }
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

    // MARK: token endpoint

    private static func checkTokenEndpoint(
        _ section: TokenEndpointSection, _ sections: ConfigSections, probe: Bool, _ reader: ConfigReader
    ) {
        let endpoint = section.config
        let jwt = sections.jwt
        if !jwt.issuers.contains(where: { $0.issuer == endpoint.issuer }) {
            reader.error(
                .unknownReference, sections.top.keyNode("token_endpoint") ?? section.node,
                "token_endpoint.issuer '\(endpoint.issuer)' must also be listed under jwt.issuers, or its tokens cannot be verified")
        } else if probe, let problem = self.refusedOwnToken(endpoint, jwt) {
            reader.error(.badValue, section.signingKeyNode, "token_endpoint.signing_key: \(problem)")
        }
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

    // MARK: TLS files

    /// One upstream's `tls`: a client certificate comes with its key, the files can be read and
    /// hold what they should, and the upstream speaks TLS at all.
    private static func checkUpstreamTLS(_ tls: UpstreamTLSDraft, _ reader: ConfigReader) {
        let what = tls.what
        if (tls.clientCertFile == nil) != (tls.clientKeyFile == nil) {
            reader.error(.badValue, tls.node, "\(what) tls needs both client_cert_file and client_key_file, or neither")
        }
        // Files the gateway cannot read would fail every request with 502; say so now.
        let files = [("ca_file", tls.caFile), ("client_cert_file", tls.clientCertFile), ("client_key_file", tls.clientKeyFile)]
        let contents = self.read(files.compactMap { key, file in file.map { (key, $0) } }, what: "\(what) tls.", reader)
        if let caFile = tls.caFile, let bytes = contents["ca_file"], let problem = TLSMaterial.certificateProblem(bytes) {
            reader.error(.badValue, caFile.node, "\(what) tls.ca_file \(caFile.written): \(problem)")
        }
        if let certificate = tls.clientCertFile, let key = tls.clientKeyFile {
            self.checkTLSPair(
                certificate: contents["client_cert_file"], key: contents["client_key_file"], certificateNode: certificate.node,
                keyNode: key.node, what: "\(what) tls", reader)
        }
        // TLS options on a plain-text upstream would silently not apply.
        if !tls.url.lowercased().hasPrefix("https://") {
            reader.error(.badValue, tls.node, "\(what) tls applies to https:// upstreams only")
        }
    }

    /// The bytes of each file that can be read, by key; each one that cannot is reported.
    private static func read(_ files: [(String, ConfigPath)], what: String, _ reader: ConfigReader) -> [String: [UInt8]] {
        var contents: [String: [UInt8]] = [:]
        for (key, file) in files {
            do {
                contents[key] = try reader.environment.readFile(file.resolved)
            } catch {
                reader.error(.unreadableFile, file.node, "cannot read \(what)\(key) \(file.resolved): \(error)")
            }
        }
        return contents
    }

    /// A certificate and its key, both read: the certificate must be PEM and the key its own.
    private static func checkTLSPair(
        certificate: [UInt8]?, key: [UInt8]?, certificateNode: Node, keyNode: Node, what: String, _ reader: ConfigReader
    ) {
        guard let certificate, let key else { return }  // unreadable: reported already
        if let problem = TLSMaterial.certificateProblem(certificate) {
            reader.error(.badValue, certificateNode, "\(what) certificate: \(problem)")
            return
        }
        if let problem = TLSMaterial.keyProblem(certificate: certificate, key: key) {
            reader.error(.badValue, keyNode, "\(what) key: \(problem)")
        }
    }

    // MARK: routes

    /// Each route's references to other sections: its upstream (required unless a decision
    /// service answers it) and the issuers it accepts, with the roles those issuers can carry.
    private static func checkRoutes(_ sections: ConfigSections, _ reader: ConfigReader) -> [RouteConfig] {
        let upstreams = sections.upstreams.upstreams
        let issuers = sections.jwt.issuers
        let decisions = sections.decisions?.config
        var routes: [RouteConfig] = []
        for draft in sections.routes {
            let fields = draft.fields
            let what = fields.name
            if let text = draft.upstream, let node = fields["upstream"] {
                if upstreams[text] == nil {
                    var message = "\(what) names the unknown upstream '\(text)'"
                    if let suggestion = closestMatch(text, in: Array(upstreams.keys)) { message += "; did you mean '\(suggestion)'?" }
                    reader.error(.unknownReference, node, message)
                }
            } else if !fields.has("upstream") {
                // With a decision service, a route may have no upstream: only the service answers it.
                if decisions == nil {
                    _ = fields.required("upstream")
                } else if decisions?.listen == nil, let nameNode = fields["name"] {
                    reader.warning(
                        .badValue, nameNode,
                        "\(what) has no upstream and the decision service does not listen (decisions.listen is empty): every request for it is answered 404")
                }
            }
            guard var route = draft.route else { continue }
            for (name, node) in draft.issuers {
                if issuers.contains(where: { $0.issuer == name }) {
                    route.issuers.append(name)
                } else {
                    var message = "\(what) names the unknown issuer '\(name)'"
                    if let suggestion = closestMatch(name, in: issuers.map(\.issuer)) { message += "; did you mean '\(suggestion)'?" }
                    reader.error(.unknownReference, node, message)
                }
            }
            if route.auth != .none, !route.roles.isEmpty || !route.rolesAny.isEmpty,
                let node = fields.keyNode("roles") ?? fields.keyNode("roles_any")
            {
                let accepted = route.issuers.isEmpty ? issuers : issuers.filter { route.issuers.contains($0.issuer) }
                if !accepted.contains(where: { !$0.rolesClaims.isEmpty }) {
                    reader.warning(
                        .badValue, node, "\(what) requires roles, but no issuer it accepts has roles_claims: the route can never be passed")
                }
            }
            routes.append(route)
        }
        return routes
    }
}
