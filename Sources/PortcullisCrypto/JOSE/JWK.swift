/// One key of a JSON Web Key Set (RFC 7517), parsed into key material.
package struct JWK: Sendable {
    package var kid: String?
    /// The `alg` the key is pinned to by its publisher, if any.
    package var algorithm: JWSAlgorithm?
    package var key: JWSKey

    package enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case notAKeySet
        case badKey(index: Int, reason: String)

        package var description: String {
            switch self {
            case .notAKeySet: return "not a JSON Web Key Set (expected an object with a \"keys\" array)"
            case .badKey(let index, let reason): return "key \(index): \(reason)"
            }
        }
    }

    /// Parses `{"keys": [...]}`. Keys meant for encryption (`use: enc`) are skipped; a key
    /// that cannot be read fails the whole set, so a typo never silently drops a key.
    /// - Parameter allowSecrets: whether `kty: oct` (shared secrets) may appear: only in local files.
    package static func parseSet(_ bytes: [UInt8], allowSecrets: Bool) throws(ParseError) -> [JWK] {
        guard let document = JSONValue.parse(bytes), case .array(let items)? = document["keys"] else {
            throw .notAKeySet
        }
        var keys: [JWK] = []
        for (index, item) in items.enumerated() {
            guard case .object = item else { throw .badKey(index: index, reason: "not an object") }
            if item["use"]?.string == "enc" { continue }
            do {
                keys.append(try Self.parse(item, allowSecrets: allowSecrets))
            } catch {
                throw .badKey(index: index, reason: error.reason)
            }
        }
        return keys
    }

    struct KeyError: Error {
        var reason: String
    }

    static func parse(_ item: JSONValue, allowSecrets: Bool) throws(KeyError) -> JWK {
        func bytes(_ name: String) throws(KeyError) -> [UInt8] {
            guard let text = item[name]?.string, let decoded = Base64URL.decode(text.utf8), !decoded.isEmpty else {
                throw KeyError(reason: "missing or malformed '\(name)'")
            }
            return decoded
        }
        var algorithm: JWSAlgorithm?
        if let alg = item["alg"] {
            guard let text = alg.string, let known = JWSAlgorithm(rawValue: text) else {
                throw KeyError(reason: "unsupported alg \(alg.serialized)")
            }
            algorithm = known
        }
        let kid = item["kid"]?.string
        let key: JWSKey
        do {
            switch item["kty"]?.string {
            case "RSA":
                if item["d"] != nil { throw KeyError(reason: "a published key set must not hold private keys") }
                key = .publicKey(try EVPKey.rsa(modulus: bytes("n"), exponent: bytes("e")))
            case "EC":
                if item["d"] != nil { throw KeyError(reason: "a published key set must not hold private keys") }
                guard let curve = item["crv"]?.string else { throw KeyError(reason: "missing 'crv'") }
                key = .publicKey(try EVPKey.ec(curve: curve, x: bytes("x"), y: bytes("y")))
            case "OKP":
                if item["d"] != nil { throw KeyError(reason: "a published key set must not hold private keys") }
                guard item["crv"]?.string == "Ed25519" else { throw KeyError(reason: "only the Ed25519 curve is supported") }
                key = .publicKey(try EVPKey.ed25519(publicKey: bytes("x")))
            case "oct":
                guard allowSecrets else { throw KeyError(reason: "shared secrets (kty oct) are not accepted here") }
                key = .secret(HMACKey(try bytes("k")))
            default:
                throw KeyError(reason: "unsupported kty \(item["kty"]?.serialized ?? "(missing)")")
            }
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError(reason: "\(error)")
        }
        if let algorithm, !algorithm.fits(key) {
            throw KeyError(reason: "the key does not fit its alg \(algorithm.rawValue)")
        }
        return JWK(kid: kid, algorithm: algorithm, key: key)
    }
}
