import PortcullisCrypto

extension TokenEndpointConfig {
    package static let jwksPath = "/.well-known/jwks.json"
    package static let metadataPath = "/.well-known/oauth-authorization-server"

    /// `POST {path}/revoke`: RFC 7009 revocation of a refresh token's family.
    package var revocationPath: String { self.path.hasSuffix("/") ? self.path + "revoke" : self.path + "/revoke" }

    /// The signing key's public half as a JWKS document; `nil` for shared-secret (HS*) keys,
    /// which are never published.
    package var publishedKeySet: String? {
        guard case .privateKey(let key) = self.signingKey,
            let jwk = key.publicJWK(kid: self.signingKID, algorithm: self.signingAlgorithm)
        else { return nil }
        return JSONValue.object(["keys": .array([jwk])]).serialized
    }

    /// RFC 8414 metadata, with URLs on `base` (`http://host:port`, as the client reached us).
    /// Clients authenticate with a secret or not at all (no `private_key_jwt`), so there is no
    /// `token_endpoint_auth_signing_alg_values_supported`.
    package func metadata(base: String) -> String {
        let authMethods = JSONValue.array(
            (self.requireClientAuth ? ["client_secret_basic", "client_secret_post"]
                : ["client_secret_basic", "client_secret_post", "none"]).map(JSONValue.string))
        var members: [String: JSONValue] = [
            "issuer": .string(self.issuer),
            "token_endpoint": .string(base + self.path),
            "grant_types_supported": .array(
                (self.refreshTokenTTL > 0 ? ["password", "refresh_token"] : ["password"]).map(JSONValue.string)),
            "response_types_supported": .array([]),
            "token_endpoint_auth_methods_supported": authMethods,
            "revocation_endpoint": .string(base + self.revocationPath),
            "revocation_endpoint_auth_methods_supported": authMethods,
        ]
        if !self.scopes.isEmpty { members["scopes_supported"] = .array(self.scopes.map { .string($0.name) }) }
        if self.publishedKeySet != nil { members["jwks_uri"] = .string(base + Self.jwksPath) }
        return JSONValue.object(members).serialized
    }
}
