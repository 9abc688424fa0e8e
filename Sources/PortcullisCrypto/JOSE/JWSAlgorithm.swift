/// The JWS algorithms Portcullis verifies and signs with (RFC 7518 §3, RFC 8037).
package enum JWSAlgorithm: String, Hashable, Sendable, CaseIterable {
    case HS256, HS384, HS512
    case RS256, RS384, RS512
    case PS256, PS384, PS512
    case ES256, ES384, ES512
    case EdDSA

    package enum Family: Hashable, Sendable {
        case hmac
        case rsa(EVPKey.RSAPadding)
        /// The curve and the byte width of each of R and S.
        case ecdsa(curve: String, width: Int)
        case eddsa
    }

    package var family: Family {
        switch self {
        case .HS256, .HS384, .HS512: return .hmac
        case .RS256, .RS384, .RS512: return .rsa(.pkcs1)
        case .PS256, .PS384, .PS512: return .rsa(.pss)
        case .ES256: return .ecdsa(curve: "P-256", width: 32)
        case .ES384: return .ecdsa(curve: "P-384", width: 48)
        case .ES512: return .ecdsa(curve: "P-521", width: 66)
        case .EdDSA: return .eddsa
        }
    }

    package var digest: DigestAlgorithm? {
        switch self {
        case .HS256, .RS256, .PS256, .ES256: return .sha256
        case .HS384, .RS384, .PS384, .ES384: return .sha384
        case .HS512, .RS512, .PS512, .ES512: return .sha512
        case .EdDSA: return nil
        }
    }

    /// Whether `key` is the right kind of key for this algorithm. This is what makes "HS256
    /// with an RSA public key as the secret" impossible: an HMAC algorithm takes a secret, and
    /// a public-key algorithm only a key of its own family and curve.
    package func fits(_ key: JWSKey) -> Bool {
        switch (self.family, key) {
        case (.hmac, .secret): return true
        case (.rsa, .publicKey(let evp)), (.rsa, .privateKey(let evp)):
            if case .rsa(let bits) = evp.kind { return bits >= 2048 }
            return false
        case (.ecdsa(let curve, _), .publicKey(let evp)), (.ecdsa(let curve, _), .privateKey(let evp)):
            return evp.kind == .ec(curve: curve)
        case (.eddsa, .publicKey(let evp)), (.eddsa, .privateKey(let evp)):
            return evp.kind == .ed25519
        default:
            return false
        }
    }
}

/// Key material for one JWS key.
package enum JWSKey: Sendable {
    /// An HMAC secret.
    case secret(HMACKey)
    case publicKey(EVPKey)
    case privateKey(EVPKey)
}
