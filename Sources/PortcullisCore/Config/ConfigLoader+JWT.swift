import PortcullisCrypto
internal import Yams

/// `jwt:`: how Bearer tokens are verified, and each trusted issuer with its keys.
extension ConfigLoader {
    static let jwtKeys = ["leeway", "scope_claims", "cache_size", "issuers"]
    static let issuerKeys = [
        "issuer", "audiences", "algorithms", "keys", "jwks_file", "jwks_url", "jwks_refresh", "discovery", "scope_claims",
        "roles_claims",
    ]
    static let keyKeys = ["kid", "secret_env", "secret_file", "public_key_file"]

    static func readJWT(_ node: Node, _ reader: ConfigReader) -> JWTConfig {
        var jwt = JWTConfig()
        guard let fields = reader.mapping(node, "jwt", keys: self.jwtKeys) else { return jwt }
        if let duration = fields.duration("leeway", allowZero: true), let value = fields["leeway"] {
            if duration > 600_000 {
                reader.error(.badValue, value, "jwt.leeway above 10m would accept long-expired tokens")
            } else {
                jwt.leeway = duration
            }
        }
        if let list = fields.stringList("scope_claims"), let value = fields["scope_claims"] {
            if list.isEmpty {
                reader.error(.badValue, value, "jwt.scope_claims must name at least one claim")
            } else {
                jwt.scopeClaims = list.map(\.0)
            }
        }
        if let size = fields.integer("cache_size", range: 0...10_000_000) { jwt.cacheSize = size }
        if let items = fields.list("issuers") {
            var seen = Set<String>()
            for item in items {
                guard let issuer = self.readIssuer(item, reader) else { continue }
                if !seen.insert(issuer.issuer).inserted {
                    reader.error(.duplicateName, item, "the issuer '\(issuer.issuer)' is listed twice")
                }
                jwt.issuers.append(issuer)
            }
        }
        return jwt
    }

    private static func readIssuer(_ node: Node, _ reader: ConfigReader) -> IssuerConfig? {
        guard let opened = reader.mapping(node, "an issuer", keys: self.issuerKeys) else { return nil }
        guard let name = opened.string("issuer", "jwt.issuers[].issuer", required: true), let issuerNode = opened["issuer"]
        else { return nil }
        let what = "issuer '\(name)'"
        let fields = opened.named(what)
        let audiences = fields.stringList("audiences")?.map(\.0) ?? []
        if let node = fields["audiences"], audiences.isEmpty, case .sequence = node {
            // An empty list would read as "no audience check": leaving the key out says that.
            reader.error(.badValue, node, "\(what) audiences must name at least one audience; leave the key out to accept any")
        }
        var algorithms: [JWSAlgorithm] = []
        if let list = fields.stringList("algorithms", required: true), let node = fields["algorithms"] {
            for (text, itemNode) in list {
                if let algorithm = JWSAlgorithm(rawValue: text) {
                    algorithms.append(algorithm)
                } else {
                    let known = JWSAlgorithm.allCases.map(\.rawValue)
                    var message = "'\(text)' is not a supported algorithm (\(known.joined(separator: ", ")))"
                    if let suggestion = closestMatch(text, in: known) { message = "'\(text)' is not a supported algorithm; did you mean '\(suggestion)'?" }
                    reader.error(.badValue, itemNode, message)
                }
            }
            if list.isEmpty { reader.error(.badValue, node, "\(what) must pin at least one algorithm") }
            let families = Set(algorithms.map { $0.family == .hmac })
            if families.count > 1 {
                reader.error(.badValue, node, "\(what) mixes HMAC and public-key algorithms; use a separate issuer for each")
            }
        }
        var keys: [IssuerKey] = []
        if let items = fields.list("keys"), let node = fields["keys"] {
            if items.isEmpty { reader.error(.badValue, node, "\(what) keys must list at least one key") }
            for item in items {
                guard let key = self.readKey(item, what, reader) else { continue }
                if !algorithms.isEmpty && !algorithms.contains(where: { $0.fits(key.key) }) {
                    reader.error(.badValue, item, "\(what): key '\(key.kid ?? "-")' fits none of the pinned algorithms \(algorithms.map(\.rawValue).joined(separator: ", "))")
                }
                if case .secret(let secret) = key.key, let shortest = algorithms.compactMap(\.digest).map(\.byteCount).max(),
                    secret.bytes.count < shortest
                {
                    reader.warning(.badValue, item, "\(what): the secret of key '\(key.kid ?? "-")' is shorter than \(shortest) bytes, which RFC 7518 §3.2 requires")
                }
                keys.append(key)
            }
        }
        if let file = fields.path("jwks_file") {
            do {
                let bytes = try reader.environment.readFile(file.resolved)
                do {
                    for jwk in try JWK.parseSet(bytes, allowSecrets: true) {
                        keys.append(IssuerKey(kid: jwk.kid, algorithm: jwk.algorithm, key: jwk.key, source: "jwks_file \(file.written)"))
                    }
                } catch {
                    reader.error(.badValue, file.node, "\(what) jwks_file \(file.written): \(error)")
                }
            } catch {
                reader.error(.unreadableFile, file.node, "\(what): cannot read jwks_file \(file.resolved): \(error)")
            }
        }
        var jwksURL: String?
        if let url = fields.string("jwks_url"), let node = fields["jwks_url"] {
            if url.lowercased().hasPrefix("https://") || url.lowercased().hasPrefix("http://") {
                jwksURL = url
            } else {
                reader.error(.badValue, node, "\(what) jwks_url must be an http:// or https:// URL")
            }
        }
        if let node = fields["jwks_url"], !algorithms.isEmpty, algorithms.allSatisfy({ $0.family == .hmac }) {
            reader.error(
                .badValue, node,
                "\(what) pins HMAC algorithms, but a jwks_url serves only public keys; give the secret under keys with secret_env or secret_file")
        } else if jwksURL == nil, !keys.isEmpty, !algorithms.isEmpty,
            !keys.contains(where: { key in algorithms.contains { $0.fits(key.key) } }), let node = fields["jwks_file"]
        {
            reader.error(.badValue, node, "\(what): no key fits the pinned algorithms \(algorithms.map(\.rawValue).joined(separator: ", "))")
        }
        let refresh = fields.duration("jwks_refresh") ?? 600_000
        let discovery = fields.bool("discovery") ?? false
        if discovery {
            if let key = ["keys", "jwks_file", "jwks_url"].first(where: { fields.has($0) }), let keyNode = fields.keyNode(key) {
                reader.error(.badValue, keyNode, "\(what) uses discovery, which finds its keys itself: remove \(key)")
            } else if !algorithms.isEmpty, algorithms.allSatisfy({ $0.family == .hmac }), let node = fields["discovery"] {
                reader.error(.badValue, node, "\(what) pins HMAC algorithms, but a discovered key set serves only public keys")
            }
        }
        let scopeClaims = fields["scope_claims"].flatMap { Self.claimPaths($0, fields.label("scope_claims"), reader) }
        let rolesClaims = fields["roles_claims"].flatMap { Self.claimPaths($0, fields.label("roles_claims"), reader) } ?? []
        if discovery {
            // the key set comes from the discovery document
        } else if keys.isEmpty && jwksURL == nil && !fields.has("jwks_file") && fields.has("keys") {
            // every key failed: already reported
        } else if keys.isEmpty && jwksURL == nil && !fields.has("jwks_file") {
            reader.error(.missingKey, node, "\(what) has no keys: give keys, jwks_file or jwks_url")
        }
        var issuer = IssuerConfig(
            issuer: name, audiences: audiences, algorithms: algorithms, keys: keys, jwksURL: jwksURL, jwksRefresh: refresh,
            location: reader.location(issuerNode))
        issuer.scopeClaims = scopeClaims
        issuer.rolesClaims = rolesClaims
        issuer.discovery = discovery
        if discovery, let node = fields["discovery"], !(name.lowercased().hasPrefix("https://") || name.lowercased().hasPrefix("http://")) {
            reader.error(.badValue, node, "\(what) uses discovery, so the issuer must be an http:// or https:// URL")
        }
        return issuer
    }

    /// A non-empty list of claim paths.
    static func claimPaths(_ node: Node, _ what: String, _ reader: ConfigReader) -> [ClaimPath]? {
        guard let list = reader.stringList(node, what) else { return nil }
        if list.isEmpty {
            reader.error(.badValue, node, "\(what) must name at least one claim")
            return nil
        }
        var paths: [ClaimPath] = []
        for (text, itemNode) in list {
            if let path = ClaimPath(text) {
                paths.append(path)
            } else {
                reader.error(.badValue, itemNode, "'\(text)' is not a claim path (dot-separated names; quote a name with a dot: \"https://example.com/roles\")")
            }
        }
        return paths
    }

    private static func readKey(_ node: Node, _ what: String, _ reader: ConfigReader) -> IssuerKey? {
        guard let fields = reader.mapping(node, "\(what) key", keys: self.keyKeys)?.named("\(what) key") else { return nil }
        let kid = fields.string("kid")
        let sources = ["secret_env", "secret_file", "public_key_file"].filter { fields.has($0) }
        guard sources.count == 1, let source = sources.first, let valueNode = fields[source] else {
            reader.error(.badValue, node, "\(what) key '\(kid ?? "-")' needs exactly one of secret_env, secret_file, public_key_file")
            return nil
        }
        guard let value = fields.string(source) else { return nil }
        guard let material = self.keyMaterial(source, value, valueNode, reader, privateKey: false) else { return nil }
        return IssuerKey(kid: kid, algorithm: nil, key: material, source: "\(source) \(value)")
    }

    /// Reads a secret or a PEM key named by `secret_env`, `secret_file`, `public_key_file` or
    /// `private_key_file`. Errors name the variable or file, never the value.
    static func keyMaterial(_ source: String, _ value: String, _ node: Node, _ reader: ConfigReader, privateKey: Bool) -> JWSKey? {
        switch source {
        case "secret_env":
            guard let secret = reader.environment.variable(value) else {
                reader.error(.badValue, node, "the environment variable \(value) is not set")
                return nil
            }
            guard !secret.isEmpty else {
                reader.error(.badValue, node, "the environment variable \(value) is empty")
                return nil
            }
            return .secret(HMACKey(Array(secret.utf8)))
        case "secret_file":
            let path = reader.resolve(value)
            var bytes: [UInt8]
            do {
                bytes = try reader.environment.readFile(path)
            } catch {
                reader.error(.unreadableFile, node, "cannot read the secret file \(path): \(error)")
                return nil
            }
            if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }  // one trailing newline is ignored
            guard !bytes.isEmpty else {
                reader.error(.badValue, node, "the secret file \(path) is empty")
                return nil
            }
            return .secret(HMACKey(bytes))
        default:
            let path = reader.resolve(value)
            let bytes: [UInt8]
            do {
                bytes = try reader.environment.readFile(path)
            } catch {
                reader.error(.unreadableFile, node, "cannot read the key file \(path): \(error)")
                return nil
            }
            do {
                return privateKey ? .privateKey(try EVPKey.privateKey(pem: bytes)) : .publicKey(try EVPKey.publicKey(pem: bytes))
            } catch {
                reader.error(.badValue, node, "\(path) is not a PEM \(privateKey ? "private" : "public") key: \(error)")
                return nil
            }
        }
    }
}
