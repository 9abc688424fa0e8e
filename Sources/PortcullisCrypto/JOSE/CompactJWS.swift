/// A JWS in compact serialization, split and decoded but not yet verified.
package struct CompactJWS: Sendable {
    package var header: JSONValue
    package var payload: JSONValue
    /// `BASE64URL(header) "." BASE64URL(payload)`: the bytes that were signed.
    package var signingInput: ArraySlice<UInt8>
    package var signature: [UInt8]

    package enum ParseError: Error, Hashable, Sendable {
        case notThreeParts
        case badBase64
        case headerNotJSON
        case payloadNotJSON
    }

    /// Splits `token` at its two dots and decodes each part strictly.
    /// - Parameter jsonPayload: whether the payload must be a JSON object (true for JWTs); when
    ///   false, a non-JSON payload reads as `.null`.
    package init(_ token: [UInt8], jsonPayload: Bool = true) throws(ParseError) {
        guard let first = token.firstIndex(of: UInt8(ascii: ".")) else { throw .notThreeParts }
        guard let second = token[(first + 1)...].firstIndex(of: UInt8(ascii: ".")) else { throw .notThreeParts }
        guard !token[(second + 1)...].contains(UInt8(ascii: ".")) else { throw .notThreeParts }
        guard let headerBytes = Base64URL.decode(token[..<first]),
            let payloadBytes = Base64URL.decode(token[(first + 1)..<second]),
            let signature = Base64URL.decode(token[(second + 1)...])
        else { throw .badBase64 }
        guard let header = JSONValue.parse(headerBytes), case .object = header else { throw .headerNotJSON }
        if let payload = JSONValue.parse(payloadBytes), case .object = payload {
            self.payload = payload
        } else if jsonPayload {
            throw .payloadNotJSON
        } else {
            self.payload = .null
        }
        self.header = header
        self.signingInput = token[..<second]
        self.signature = signature
    }

    /// Checks the signature with `key` under `algorithm`, in constant time for HMAC.
    package func verify(algorithm: JWSAlgorithm, key: JWSKey) -> Bool {
        guard algorithm.fits(key) else { return false }
        return self.signingInput.withUnsafeBytes { message in
            switch (algorithm.family, key) {
            case (.hmac, .secret(let secret)):
                return self.signature.withUnsafeBytes { secret.verify(algorithm.digest!, message, tag: $0) }
            case (.rsa(let padding), .publicKey(let evp)), (.rsa(let padding), .privateKey(let evp)):
                return self.signature.withUnsafeBytes {
                    evp.verify(signature: $0, message: message, digest: algorithm.digest, padding: padding)
                }
            case (.ecdsa(_, let width), .publicKey(let evp)), (.ecdsa(_, let width), .privateKey(let evp)):
                guard let der = self.signature.withUnsafeBytes({ ECDSASignature.der(fromRaw: $0, width: width) }) else {
                    return false
                }
                return der.withUnsafeBytes { evp.verify(signature: $0, message: message, digest: algorithm.digest) }
            case (.eddsa, .publicKey(let evp)), (.eddsa, .privateKey(let evp)):
                return self.signature.withUnsafeBytes { evp.verify(signature: $0, message: message, digest: nil) }
            default:
                return false
            }
        }
    }

    /// Signs `header` and `payload` (already serialized JSON) into a compact JWS.
    package static func sign(header: String, payload: String, algorithm: JWSAlgorithm, key: JWSKey) throws -> String {
        guard algorithm.fits(key) else {
            throw OpenSSLError(operation: "the key does not fit \(algorithm.rawValue)", code: 0)
        }
        let input = Base64URL.encode(header.utf8) + "." + Base64URL.encode(payload.utf8)
        let bytes = Array(input.utf8)
        let signature: [UInt8] = try bytes.withUnsafeBytes { message in
            switch (algorithm.family, key) {
            case (.hmac, .secret(let secret)):
                return secret.mac(algorithm.digest!, message)
            case (.rsa(let padding), .privateKey(let evp)):
                return try evp.sign(message: message, digest: algorithm.digest, padding: padding)
            case (.ecdsa(_, let width), .privateKey(let evp)):
                let der = try evp.sign(message: message, digest: algorithm.digest)
                guard let raw = ECDSASignature.raw(fromDER: der, width: width) else {
                    throw OpenSSLError(operation: "converting an ECDSA signature", code: 0)
                }
                return raw
            case (.eddsa, .privateKey(let evp)):
                return try evp.sign(message: message, digest: nil)
            default:
                throw OpenSSLError(operation: "signing needs a secret or a private key", code: 0)
            }
        }
        return input + "." + Base64URL.encode(signature)
    }
}
