import PortcullisCrypto
internal import Yams

/// `token_endpoint:`: the built-in OAuth2 authorization server, its signing key and its store.
extension ConfigLoader {
    static let tokenEndpointKeys = [
        "path", "issuer", "audience", "signing_key", "access_token_ttl", "refresh_token_ttl", "scopes", "default_scopes",
        "require_grant_type", "clients", "require_client_auth", "store", "store_password_env", "login_throttle",
        "max_concurrent_hashes",
    ]
    static let signingKeyKeys = ["alg", "kid", "secret_env", "secret_file", "private_key_file"]

    /// - Parameter mergeSlashes: `server.merge_slashes`, which decides whether `path` can be reached.
    static func readTokenEndpoint(_ node: Node, mergeSlashes: Bool, _ reader: ConfigReader) -> TokenEndpointSection? {
        guard let fields = reader.mapping(node, "token_endpoint", keys: self.tokenEndpointKeys) else { return nil }
        let path = fields.string("path") ?? "/token"
        if let node = fields["path"], !Self.isNormalPath(path, mergeSlashes: mergeSlashes) {
            reader.error(
                .badValue, node,
                "token_endpoint.path '\(path)' can never be reached: request paths are normalized first (\(Self.normalForm(path, mergeSlashes: mergeSlashes)))")
        }
        guard let issuer = fields.string("issuer", required: true) else { return nil }
        let audience = fields.string("audience")
        let ttl = fields.duration("access_token_ttl") ?? 1_800_000
        let hashes = fields.integer("max_concurrent_hashes", range: 1...64) ?? 2
        guard let key = fields.mapping("signing_key", keys: self.signingKeyKeys, required: true), let keyNode = fields["signing_key"]
        else { return nil }
        guard let algText = key.string("alg", required: true), let algNode = key["alg"] else { return nil }
        guard let algorithm = JWSAlgorithm(rawValue: algText) else {
            reader.error(.badValue, algNode, "'\(algText)' is not a supported signing algorithm")
            return nil
        }
        guard let kid = key.string("kid", required: true) else { return nil }
        let sources = ["secret_env", "secret_file", "private_key_file"].filter { key.has($0) }
        guard sources.count == 1, let source = sources.first, let valueNode = key[source], let value = key.string(source) else {
            reader.error(.badValue, keyNode, "token_endpoint.signing_key needs exactly one of secret_env, secret_file, private_key_file")
            return nil
        }
        guard let material = self.keyMaterial(source, value, valueNode, reader, privateKey: source == "private_key_file")
        else { return nil }
        guard algorithm.fits(material) else {
            reader.error(.badValue, algNode, "token_endpoint.signing_key: the key does not fit \(algText)")
            return nil
        }
        var endpoint = TokenEndpointConfig(
            path: path, issuer: issuer, audience: audience, signingAlgorithm: algorithm, signingKID: kid, signingKey: material,
            accessTokenTTL: ttl, maxConcurrentHashes: hashes, location: reader.location(node))
        self.readTokenEndpointDetails(fields, &endpoint, reader)
        return TokenEndpointSection(config: endpoint, node: node, signingKeyNode: keyNode)
    }

    private static func readTokenEndpointDetails(_ fields: ConfigFields, _ endpoint: inout TokenEndpointConfig, _ reader: ConfigReader) {
        if let node = fields["path"], !endpoint.path.hasPrefix("/") {
            reader.error(.badValue, node, "token_endpoint.path must start with '/'")
        }
        if let value = fields.duration("refresh_token_ttl", allowZero: true) { endpoint.refreshTokenTTL = value }
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
        if let list = fields.stringList("default_scopes") { endpoint.defaultScopes = list.map(\.0) }
        if let value = fields.bool("require_grant_type") { endpoint.requireGrantType = value }
        if let value = fields.bool("require_client_auth") { endpoint.requireClientAuth = value }
        if let items = fields.list("clients") {
            for item in items {
                guard let opened = reader.mapping(item, "a client", keys: ["client_id", "secret_hash"]),
                    let id = opened.string("client_id", "client_id", required: true)
                else { continue }
                let client = opened.named("client '\(id)'")
                guard let hash = client.string("secret_hash", required: true), let hashNode = client["secret_hash"] else { continue }
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
        if let text = fields.string("store"), let node = fields["store"] {
            if text == "memory:" {
                endpoint.store = .memory
            } else if text.hasPrefix("sqlite:"), text.count > 7 {
                endpoint.store = .sqlite(path: reader.resolve(String(text.dropFirst(7))))
            } else if text.lowercased().hasPrefix("postgresql:") || text.lowercased().hasPrefix("postgres:") {
                namesPostgres = true
                do {
                    var settings = try PostgresStoreSettings.parse(text)
                    if let root = settings.sslRootCert {
                        let path = reader.resolve(root)
                        settings.sslRootCert = path
                        do {
                            _ = try reader.environment.readFile(path)
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
        if let name = fields.string("store_password_env"), let node = fields["store_password_env"] {
            if case .postgresql(var settings) = endpoint.store {
                // Named, never inline: the value is read here and shows up in no message.
                if let password = reader.environment.variable(name), !password.isEmpty {
                    settings.password = password
                    endpoint.store = .postgresql(settings)
                } else {
                    reader.error(.badValue, node, "the environment variable \(name) is not set or empty")
                }
            } else if !namesPostgres {
                reader.error(.badValue, node, "token_endpoint.store_password_env applies only to a postgresql:// store")
            }
        }
        if let throttle = fields.mapping("login_throttle", keys: ["max_failures", "window"]) {
            if let value = throttle.integer("max_failures", "login_throttle.max_failures", range: 1...1_000_000) {
                endpoint.throttleMaxFailures = value
            }
            if let value = throttle.duration("window", "login_throttle.window") { endpoint.throttleWindow = value }
        }
        let declared = Set(endpoint.scopes.map(\.name))
        if !declared.isEmpty, let node = fields["default_scopes"] {
            for scope in endpoint.defaultScopes where !declared.contains(scope) {
                reader.error(.unknownReference, node, "default scope '\(scope)' is not declared under token_endpoint.scopes")
            }
        }
    }
}
