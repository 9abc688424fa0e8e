import PortcullisCrypto

/// Mints access tokens with the token endpoint's signing key: header `typ: at+jwt` and `kid`;
/// claims `iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `scope`.
package enum TokenMinter {
    package static func mint(
        _ endpoint: TokenEndpointConfig, subject: String, scopes: [String], ttlSeconds: Int64, now: Double,
        clientID: String? = nil
    ) throws -> String {
        let header: JSONValue = .object([
            "alg": .string(endpoint.signingAlgorithm.rawValue), "kid": .string(endpoint.signingKID), "typ": .string("at+jwt"),
        ])
        let issuedAt = Int64(now)
        var claims: [String: JSONValue] = [
            "iss": .string(endpoint.issuer), "sub": .string(subject), "iat": .number(Double(issuedAt)),
            "exp": .number(Double(issuedAt + ttlSeconds)), "jti": .string(SecureRandom.hex(16)),
            "scope": .string(scopes.joined(separator: " ")),
        ]
        if let audience = endpoint.audience { claims["aud"] = .string(audience) }
        if let clientID { claims["client_id"] = .string(clientID) }
        return try CompactJWS.sign(
            header: header.serialized, payload: JSONValue.object(claims).serialized, algorithm: endpoint.signingAlgorithm,
            key: endpoint.signingKey)
    }
}
