internal import CPortcullisOpenSSL

extension EVPKey {
    /// The public half of this key as a JWK (RFC 7517, RFC 8037), for `/.well-known/jwks.json`.
    /// `nil` for key kinds JOSE has no form for.
    package func publicJWK(kid: String, algorithm: JWSAlgorithm) -> JSONValue? {
        var members: [String: JSONValue] = [
            "kid": .string(kid), "alg": .string(algorithm.rawValue), "use": .string("sig"),
        ]
        switch self.kind {
        case .rsa:
            guard let n = self.bigNumber(OSSL_PKEY_PARAM_RSA_N), let e = self.bigNumber(OSSL_PKEY_PARAM_RSA_E) else { return nil }
            members["kty"] = .string("RSA")
            members["n"] = .string(Base64URL.encode(n))
            members["e"] = .string(Base64URL.encode(e))
        case .ec(let curve?):
            var point = [UInt8](repeating: 0, count: 256)
            var length = 0
            guard EVP_PKEY_get_octet_string_param(self.pointer, OSSL_PKEY_PARAM_PUB_KEY, &point, point.count, &length) == 1,
                length > 1, point[0] == 0x04
            else {
                ERR_clear_error()
                return nil
            }
            let width = (length - 1) / 2
            members["kty"] = .string("EC")
            members["crv"] = .string(curve)
            members["x"] = .string(Base64URL.encode(point[1..<(1 + width)]))
            members["y"] = .string(Base64URL.encode(point[(1 + width)..<length]))
        case .ed25519:
            var raw = [UInt8](repeating: 0, count: 32)
            var length = raw.count
            guard EVP_PKEY_get_raw_public_key(self.pointer, &raw, &length) == 1 else {
                ERR_clear_error()
                return nil
            }
            members["kty"] = .string("OKP")
            members["crv"] = .string("Ed25519")
            members["x"] = .string(Base64URL.encode(raw.prefix(length)))
        default:
            return nil
        }
        return .object(members)
    }

    private func bigNumber(_ name: String) -> [UInt8]? {
        var number: OpaquePointer?
        guard EVP_PKEY_get_bn_param(self.pointer, name, &number) == 1, let number else {
            ERR_clear_error()
            return nil
        }
        defer { BN_free(number) }  // get_bn_param allocates a copy for us
        var bytes = [UInt8](repeating: 0, count: Int((BN_num_bits(number) + 7) / 8))
        _ = BN_bn2bin(number, &bytes)
        return bytes
    }
}
