import PortcullisCrypto
internal import Yams

extension ConfigLoader {
    static let jwtKeys = ["leeway", "scope_claims", "cache_size", "issuers"]
    static let issuerKeys = [
        "issuer", "audiences", "algorithms", "keys", "jwks_file", "jwks_url", "jwks_refresh", "discovery", "scope_claims",
        "roles_claims",
    ]
    static let keyKeys = ["kid", "secret_env", "secret_file", "public_key_file"]
    static let userKeys = ["username", "password_hash", "scopes", "disabled", "full_name", "email"]
    static let tokenEndpointKeys = [
        "path", "issuer", "audience", "signing_key", "access_token_ttl", "refresh_token_ttl", "scopes", "default_scopes",
        "require_grant_type", "clients", "require_client_auth", "store", "store_password_env", "login_throttle",
        "max_concurrent_hashes",
    ]
    static let signingKeyKeys = ["alg", "kid", "secret_env", "secret_file", "private_key_file"]

    // MARK: jwt

    static func readJWT(_ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment) -> JWTConfig {
        var jwt = JWTConfig()
        guard let fields = reader.mapping(node, "jwt", keys: self.jwtKeys) else { return jwt }
        if let value = fields["leeway"], let duration = reader.duration(value, "jwt.leeway", allowZero: true) {
            if duration > 600_000 {
                reader.error(.badValue, value, "jwt.leeway above 10m would accept long-expired tokens")
            } else {
                jwt.leeway = duration
            }
        }
        if let value = fields["scope_claims"], let list = reader.stringList(value, "jwt.scope_claims") {
            if list.isEmpty {
                reader.error(.badValue, value, "jwt.scope_claims must name at least one claim")
            } else {
                jwt.scopeClaims = list.map(\.0)
            }
        }
        if let value = fields["cache_size"], let size = reader.integer(value, "jwt.cache_size", range: 0...10_000_000) {
            jwt.cacheSize = size
        }
        if let value = fields["issuers"], let items = reader.sequence(value, "jwt.issuers") {
            var seen = Set<String>()
            for item in items {
                guard let issuer = self.readIssuer(item, reader, environment) else { continue }
                if !seen.insert(issuer.issuer).inserted {
                    reader.error(.duplicateName, item, "the issuer '\(issuer.issuer)' is listed twice")
                }
                jwt.issuers.append(issuer)
            }
        }
        return jwt
    }

    private static func readIssuer(_ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment) -> IssuerConfig? {
        guard let fields = reader.mapping(node, "an issuer", keys: self.issuerKeys) else { return nil }
        guard let issuerNode = fields.required("issuer", reader, "an issuer"),
            let name = reader.string(issuerNode, "jwt.issuers[].issuer")
        else { return nil }
        let what = "issuer '\(name)'"
        let audiences = fields["audiences"].flatMap { reader.stringList($0, "\(what) audiences") }?.map(\.0) ?? []
        if let node = fields["audiences"], audiences.isEmpty, case .sequence = node {
            // An empty list would read as "no audience check": leaving the key out says that.
            reader.error(.badValue, node, "\(what) audiences must name at least one audience; leave the key out to accept any")
        }
        var algorithms: [JWSAlgorithm] = []
        if let node = fields.required("algorithms", reader, what), let list = reader.stringList(node, "\(what) algorithms") {
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
        if let node = fields["keys"], let items = reader.sequence(node, "\(what) keys") {
            if items.isEmpty { reader.error(.badValue, node, "\(what) keys must list at least one key") }
            for item in items {
                if let key = self.readKey(item, what, reader, environment) {
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
        }
        if let node = fields["jwks_file"], let path = reader.string(node, "\(what) jwks_file") {
            let resolved = environment.resolve(path)
            do {
                let bytes = try environment.readFile(resolved)
                do {
                    for jwk in try JWK.parseSet(bytes, allowSecrets: true) {
                        keys.append(IssuerKey(kid: jwk.kid, algorithm: jwk.algorithm, key: jwk.key, source: "jwks_file \(path)"))
                    }
                } catch {
                    reader.error(.badValue, node, "\(what) jwks_file \(path): \(error)")
                }
            } catch {
                reader.error(.unreadableFile, node, "\(what): cannot read jwks_file \(resolved): \(error)")
            }
        }
        var jwksURL: String?
        if let node = fields["jwks_url"], let url = reader.string(node, "\(what) jwks_url") {
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
        var refresh: Milliseconds = 600_000
        if let node = fields["jwks_refresh"], let value = reader.duration(node, "\(what) jwks_refresh") { refresh = value }
        let discovery = fields["discovery"].flatMap { reader.bool($0, "\(what) discovery") } ?? false
        if discovery {
            if let key = ["keys", "jwks_file", "jwks_url"].first(where: { fields[$0] != nil }), let keyNode = fields.keyNode(key) {
                reader.error(.badValue, keyNode, "\(what) uses discovery, which finds its keys itself: remove \(key)")
            } else if !algorithms.isEmpty, algorithms.allSatisfy({ $0.family == .hmac }), let node = fields["discovery"] {
                reader.error(.badValue, node, "\(what) pins HMAC algorithms, but a discovered key set serves only public keys")
            }
        }
        let scopeClaims = fields["scope_claims"].flatMap { Self.claimPaths($0, "\(what) scope_claims", reader) }
        let rolesClaims = fields["roles_claims"].flatMap { Self.claimPaths($0, "\(what) roles_claims", reader) } ?? []
        if discovery {
            // the key set comes from the discovery document
        } else if keys.isEmpty && jwksURL == nil && fields["jwks_file"] == nil && fields["keys"] != nil {
            // every key failed: already reported
        } else if keys.isEmpty && jwksURL == nil && fields["jwks_file"] == nil {
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

    private static func readKey(_ node: Node, _ what: String, _ reader: ConfigReader, _ environment: any ConfigEnvironment)
        -> IssuerKey?
    {
        guard let fields = reader.mapping(node, "\(what) key", keys: self.keyKeys) else { return nil }
        let kid = fields["kid"].flatMap { reader.string($0, "\(what) key kid") }
        let sources = ["secret_env", "secret_file", "public_key_file"].filter { fields[$0] != nil }
        guard sources.count == 1, let source = sources.first, let valueNode = fields[source] else {
            reader.error(.badValue, node, "\(what) key '\(kid ?? "-")' needs exactly one of secret_env, secret_file, public_key_file")
            return nil
        }
        guard let value = reader.string(valueNode, "\(what) key \(source)") else { return nil }
        guard let material = self.keyMaterial(source, value, valueNode, reader, environment, privateKey: false) else { return nil }
        return IssuerKey(kid: kid, algorithm: nil, key: material, source: "\(source) \(value)")
    }

    /// Reads a secret or a PEM key named by `secret_env`, `secret_file`, `public_key_file` or
    /// `private_key_file`. Errors name the variable or file, never the value.
    static func keyMaterial(
        _ source: String, _ value: String, _ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment,
        privateKey: Bool
    ) -> JWSKey? {
        switch source {
        case "secret_env":
            guard let secret = environment.variable(value) else {
                reader.error(.badValue, node, "the environment variable \(value) is not set")
                return nil
            }
            guard !secret.isEmpty else {
                reader.error(.badValue, node, "the environment variable \(value) is empty")
                return nil
            }
            return .secret(HMACKey(Array(secret.utf8)))
        case "secret_file":
            let path = environment.resolve(value)
            var bytes: [UInt8]
            do {
                bytes = try environment.readFile(path)
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
            let path = environment.resolve(value)
            let bytes: [UInt8]
            do {
                bytes = try environment.readFile(path)
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

    // MARK: users

    static func readUsers(_ node: Node, _ reader: ConfigReader) -> [UserConfig] {
        guard let items = reader.sequence(node, "users") else { return [] }
        var users: [UserConfig] = []
        var seen = Set<String>()
        for item in items {
            guard let fields = reader.mapping(item, "a user", keys: self.userKeys) else { continue }
            guard let nameNode = fields.required("username", reader, "a user"), let name = reader.string(nameNode, "username")
            else { continue }
            if !seen.insert(name).inserted { reader.error(.duplicateName, nameNode, "the user '\(name)' is listed twice") }
            guard let hashNode = fields.required("password_hash", reader, "user '\(name)'"),
                let hash = reader.string(hashNode, "user '\(name)' password_hash")
            else { continue }
            if !(hash.hasPrefix("$argon2id$") || hash.hasPrefix("$argon2i$") || hash.hasPrefix("$argon2d$")) {
                reader.error(.badValue, hashNode, "user '\(name)': password_hash must be an Argon2 PHC string ($argon2id$v=19$m=…); make one with 'portcullis hash-password'")
            }
            let scopes = fields["scopes"].flatMap { reader.stringList($0, "user '\(name)' scopes") }?.map(\.0) ?? []
            let disabled = fields["disabled"].flatMap { reader.bool($0, "user '\(name)' disabled") } ?? false
            let fullName = fields["full_name"].flatMap { reader.string($0, "user '\(name)' full_name", allowEmpty: true) }
            let email = fields["email"].flatMap { reader.string($0, "user '\(name)' email", allowEmpty: true) }
            users.append(
                UserConfig(username: name, passwordHash: hash, scopes: scopes, disabled: disabled, fullName: fullName, email: email))
        }
        return users
    }

    private static func readTokenEndpointDetails(
        _ fields: MappingFields, _ endpoint: inout TokenEndpointConfig, _ reader: ConfigReader,
        _ environment: any ConfigEnvironment
    ) {
        if let node = fields["path"], !endpoint.path.hasPrefix("/") {
            reader.error(.badValue, node, "token_endpoint.path must start with '/'")
        }
        if let node = fields["refresh_token_ttl"], let value = reader.duration(node, "token_endpoint.refresh_token_ttl", allowZero: true) {
            endpoint.refreshTokenTTL = value
        }
        if let node = fields["scopes"] {
            if case .mapping(let mapping) = node {
                for (key, value) in mapping {
                    guard let name = reader.string(key, "a scope name") else { continue }
                    let description = reader.string(value, "the description of scope '\(name)'", allowEmpty: true) ?? ""
                    endpoint.scopes.append((name, description))
                }
            } else {
                reader.error(.wrongType, node, "token_endpoint.scopes must map scope names to descriptions")
            }
        }
        if let node = fields["default_scopes"], let list = reader.stringList(node, "token_endpoint.default_scopes") {
            endpoint.defaultScopes = list.map(\.0)
        }
        if let node = fields["require_grant_type"], let value = reader.bool(node, "token_endpoint.require_grant_type") {
            endpoint.requireGrantType = value
        }
        if let node = fields["require_client_auth"], let value = reader.bool(node, "token_endpoint.require_client_auth") {
            endpoint.requireClientAuth = value
        }
        if let node = fields["clients"], let items = reader.sequence(node, "token_endpoint.clients") {
            for item in items {
                guard let client = reader.mapping(item, "a client", keys: ["client_id", "secret_hash"]),
                    let id = client.required("client_id", reader, "a client").flatMap({ reader.string($0, "client_id") }),
                    let hashNode = client.required("secret_hash", reader, "client '\(id)'"),
                    let hash = reader.string(hashNode, "client '\(id)' secret_hash")
                else { continue }
                if !hash.hasPrefix("$argon2") {
                    reader.error(.badValue, hashNode, "client '\(id)': secret_hash must be an Argon2 PHC string from 'portcullis hash-password'")
                }
                if endpoint.clients.contains(where: { $0.clientID == id }), let idNode = client["client_id"] {
                    reader.error(.duplicateName, idNode, "the client '\(id)' is listed twice")
                }
                endpoint.clients.append(ClientConfig(clientID: id, secretHash: hash))
            }
        }
        // A postgresql:// URL with an error is already reported: no second error for its password.
        var namesPostgres = false
        if let node = fields["store"], let text = reader.string(node, "token_endpoint.store") {
            if text == "memory:" {
                endpoint.store = .memory
            } else if text.hasPrefix("sqlite:"), text.count > 7 {
                endpoint.store = .sqlite(path: environment.resolve(String(text.dropFirst(7))))
            } else if text.lowercased().hasPrefix("postgresql:") || text.lowercased().hasPrefix("postgres:") {
                namesPostgres = true
                do {
                    var settings = try PostgresStoreSettings.parse(text)
                    if let root = settings.sslRootCert {
                        let path = environment.resolve(root)
                        settings.sslRootCert = path
                        do {
                            _ = try environment.readFile(path)
                        } catch {
                            reader.error(.unreadableFile, node, "token_endpoint.store: cannot read sslrootcert \(path): \(error)")
                        }
                    }
                    endpoint.store = .postgresql(settings)
                } catch {
                    reader.error(.badValue, node, "token_endpoint.store: \(error.message)")
                }
            } else {
                reader.error(.badValue, node, "token_endpoint.store must be sqlite:PATH, postgresql://USER@HOST:PORT/DATABASE or memory:")
            }
        }
        if let node = fields["store_password_env"], let name = reader.string(node, "token_endpoint.store_password_env") {
            if case .postgresql(var settings) = endpoint.store {
                // Named, never inline: the value is read here and shows up in no message.
                if let password = environment.variable(name), !password.isEmpty {
                    settings.password = password
                    endpoint.store = .postgresql(settings)
                } else {
                    reader.error(.badValue, node, "the environment variable \(name) is not set or empty")
                }
            } else if !namesPostgres {
                reader.error(.badValue, node, "token_endpoint.store_password_env applies only to a postgresql:// store")
            }
        }
        if let node = fields["login_throttle"],
            let throttle = reader.mapping(node, "token_endpoint.login_throttle", keys: ["max_failures", "window"])
        {
            if let value = throttle["max_failures"].flatMap({ reader.integer($0, "login_throttle.max_failures", range: 1...1_000_000) }) {
                endpoint.throttleMaxFailures = value
            }
            if let value = throttle["window"].flatMap({ reader.duration($0, "login_throttle.window") }) {
                endpoint.throttleWindow = value
            }
        }
        let declared = Set(endpoint.scopes.map(\.name))
        if !declared.isEmpty, let node = fields["default_scopes"] {
            for scope in endpoint.defaultScopes where !declared.contains(scope) {
                reader.error(.unknownReference, node, "default scope '\(scope)' is not declared under token_endpoint.scopes")
            }
        }
    }

    // MARK: api_keys

    static func readAPIKeys(_ node: Node, _ reader: ConfigReader) -> [APIKeyConfig] {
        guard let items = reader.sequence(node, "api_keys") else { return [] }
        var keys: [APIKeyConfig] = []
        var seen = Set<String>()
        for item in items {
            guard let fields = reader.mapping(item, "an API key", keys: ["name", "key_hash", "scopes", "in", "param"]) else { continue }
            guard let nameNode = fields.required("name", reader, "an API key"), let name = reader.string(nameNode, "API key name")
            else { continue }
            if !seen.insert(name).inserted { reader.error(.duplicateName, nameNode, "the API key '\(name)' is listed twice") }
            let what = "API key '\(name)'"
            guard let hashNode = fields.required("key_hash", reader, what), let text = reader.string(hashNode, "\(what) key_hash") else {
                continue
            }
            let hash: APIKeyConfig.Hash
            if text.hasPrefix("sha256:") {
                let hex = Array(text.dropFirst(7).utf8)
                guard hex.count == 64, hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                    reader.error(.badValue, hashNode, "\(what): sha256: must be followed by 64 lower-case hex digits")
                    continue
                }
                hash = .sha256(stride(from: 0, to: 64, by: 2).map { UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16)! })
            } else if text.hasPrefix("$argon2id$") || text.hasPrefix("$argon2i$") || text.hasPrefix("$argon2d$") {
                hash = .argon2(text)
            } else {
                reader.error(.badValue, hashNode, "\(what): key_hash must be sha256:<hex> or an Argon2 PHC string")
                continue
            }
            let scopes = fields["scopes"].flatMap { reader.stringList($0, "\(what) scopes") }?.map(\.0) ?? []
            var location = APIKeyConfig.Location.header
            if let node = fields["in"], let text = reader.string(node, "\(what) in") {
                if let value = APIKeyConfig.Location(rawValue: text) {
                    location = value
                } else {
                    reader.error(.badValue, node, "\(what) in must be header, query or cookie")
                }
            }
            var param = "X-API-Key"
            if let node = fields["param"], let text = reader.string(node, "\(what) param") {
                switch location {
                case .header where !HeaderName.isToken(text):
                    reader.error(.badValue, node, "\(what) param '\(text)' is not a valid header name")
                case .cookie where !HeaderName.isToken(text):
                    reader.error(.badValue, node, "\(what) param '\(text)' is not a valid cookie name (RFC 6265 §4.1.1)")
                case .query where text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }):
                    reader.error(.badValue, node, "\(what) param must not contain control characters")
                default:
                    break
                }
                param = text
            }
            keys.append(APIKeyConfig(name: name, hash: hash, scopes: scopes, location: location, param: param))
        }
        return keys
    }

    // MARK: token_endpoint

    static func readTokenEndpoint(_ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment, mergeSlashes: Bool)
        -> TokenEndpointConfig?
    {
        guard let fields = reader.mapping(node, "token_endpoint", keys: self.tokenEndpointKeys) else { return nil }
        let path = fields["path"].flatMap { reader.string($0, "token_endpoint.path") } ?? "/token"
        if let node = fields["path"], !Self.isNormalPath(path, mergeSlashes: mergeSlashes) {
            reader.error(
                .badValue, node,
                "token_endpoint.path '\(path)' can never be reached: request paths are normalized first (\(Self.normalForm(path, mergeSlashes: mergeSlashes)))")
        }
        guard let issuerNode = fields.required("issuer", reader, "token_endpoint"),
            let issuer = reader.string(issuerNode, "token_endpoint.issuer")
        else { return nil }
        let audience = fields["audience"].flatMap { reader.string($0, "token_endpoint.audience") }
        var ttl: Milliseconds = 1_800_000
        if let node = fields["access_token_ttl"], let value = reader.duration(node, "token_endpoint.access_token_ttl") {
            ttl = value
        }
        var hashes = 2
        if let node = fields["max_concurrent_hashes"],
            let value = reader.integer(node, "token_endpoint.max_concurrent_hashes", range: 1...64)
        {
            hashes = value
        }
        guard let keyNode = fields.required("signing_key", reader, "token_endpoint"),
            let key = reader.mapping(keyNode, "token_endpoint.signing_key", keys: self.signingKeyKeys)
        else { return nil }
        guard let algNode = key.required("alg", reader, "token_endpoint.signing_key"),
            let algText = reader.string(algNode, "token_endpoint.signing_key.alg")
        else { return nil }
        guard let algorithm = JWSAlgorithm(rawValue: algText) else {
            reader.error(.badValue, algNode, "'\(algText)' is not a supported signing algorithm")
            return nil
        }
        guard let kidNode = key.required("kid", reader, "token_endpoint.signing_key"),
            let kid = reader.string(kidNode, "token_endpoint.signing_key.kid")
        else { return nil }
        let sources = ["secret_env", "secret_file", "private_key_file"].filter { key[$0] != nil }
        guard sources.count == 1, let source = sources.first, let valueNode = key[source],
            let value = reader.string(valueNode, "token_endpoint.signing_key.\(source)")
        else {
            reader.error(.badValue, keyNode, "token_endpoint.signing_key needs exactly one of secret_env, secret_file, private_key_file")
            return nil
        }
        guard let material = self.keyMaterial(source, value, valueNode, reader, environment, privateKey: source == "private_key_file")
        else { return nil }
        guard algorithm.fits(material) else {
            reader.error(.badValue, algNode, "token_endpoint.signing_key: the key does not fit \(algText)")
            return nil
        }
        var endpoint = TokenEndpointConfig(
            path: path, issuer: issuer, audience: audience, signingAlgorithm: algorithm, signingKID: kid, signingKey: material,
            accessTokenTTL: ttl, maxConcurrentHashes: hashes, location: reader.location(node))
        self.readTokenEndpointDetails(fields, &endpoint, reader, environment)
        return endpoint
    }
}
