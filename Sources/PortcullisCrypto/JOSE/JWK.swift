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

    /// Parses a local `{"keys": [...]}` file, the operator's own: keys meant for encryption
    /// (`use: enc`) or for other operations than verifying (a `key_ops` without `verify`) are
    /// skipped, and a key that cannot be read fails the whole set, so a typo never silently
    /// drops a key.
    /// - Parameter allowSecrets: whether `kty: oct` (shared secrets) may appear.
    package static func parseSet(_ bytes: [UInt8], allowSecrets: Bool) throws(ParseError) -> [JWK] {
        var skipped: [String]?
        return try Self.parseSet(bytes, allowSecrets: allowSecrets, skipped: &skipped)
    }

    /// Parses a set an identity provider publishes (`jwks_url`). Keys this gateway cannot use
    /// (another `kty` or curve, too short, not a valid key) are left out and described in
    /// `skipped`, as RFC 7517 §5 asks, so one exotic or legacy key does not take the others
    /// down. A private key or a shared secret still fails the set whole: it is leaking secrets.
    package static func parsePublishedSet(_ bytes: [UInt8]) throws(ParseError) -> (keys: [JWK], skipped: [String]) {
        var skipped: [String]? = []
        let keys = try Self.parseSet(bytes, allowSecrets: false, skipped: &skipped)
        return (keys, skipped ?? [])
    }

    /// - Parameter skipped: `nil` to fail on any unreadable key, else where to note the keys left out.
    private static func parseSet(_ bytes: [UInt8], allowSecrets: Bool, skipped: inout [String]?) throws(ParseError) -> [JWK] {
        guard let document = JSONValue.parse(bytes), case .array(let items)? = document["keys"] else {
            throw .notAKeySet
        }
        var keys: [JWK] = []
        for (index, item) in items.enumerated() {
            guard case .object = item else {
                guard skipped != nil else { throw .badKey(index: index, reason: "not an object") }
                skipped?.append("key \(index): not an object")
                continue
            }
            if item["use"]?.string == "enc" || !Self.mayVerify(item) { continue }
            do {
                keys.append(try Self.parse(item, allowSecrets: allowSecrets))
            } catch {
                guard skipped != nil, !error.leaksSecrets else { throw .badKey(index: index, reason: error.reason) }
                skipped?.append("key \(index)\(item["kid"]?.string.map { " (kid \($0))" } ?? ""): \(error.reason)")
            }
        }
        return keys
    }

    /// Whether a key may verify signatures: RFC 7517 §4.3 limits a key with `key_ops` to the
    /// operations listed there, so one without `verify` (or with a `key_ops` that is no list) is
    /// not used for tokens.
    private static func mayVerify(_ item: JSONValue) -> Bool {
        guard let operations = item["key_ops"] else { return true }
        guard case .array(let values) = operations else { return false }
        return values.contains { $0.string == "verify" }
    }

    struct KeyError: Error {
        var reason: String
        /// A private key or a shared secret where only public keys belong.
        var leaksSecrets = false
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
                if item["d"] != nil { throw KeyError(reason: "a published key set must not hold private keys", leaksSecrets: true) }
                key = .publicKey(try EVPKey.rsa(modulus: bytes("n"), exponent: bytes("e")))
            case "EC":
                if item["d"] != nil { throw KeyError(reason: "a published key set must not hold private keys", leaksSecrets: true) }
                guard let curve = item["crv"]?.string else { throw KeyError(reason: "missing 'crv'") }
                key = .publicKey(try EVPKey.ec(curve: curve, x: bytes("x"), y: bytes("y")))
            case "OKP":
                if item["d"] != nil { throw KeyError(reason: "a published key set must not hold private keys", leaksSecrets: true) }
                guard item["crv"]?.string == "Ed25519" else { throw KeyError(reason: "only the Ed25519 curve is supported") }
                key = .publicKey(try EVPKey.ed25519(publicKey: bytes("x")))
            case "oct":
                guard allowSecrets else { throw KeyError(reason: "shared secrets (kty oct) are not accepted here", leaksSecrets: true) }
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
