internal import CPortcullisOpenSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A parsed OpenSSL key (public, or private for signing). Owns exactly one reference to its
/// `EVP_PKEY` and drops it in `deinit`.
///
/// OpenSSL allows one fully built `EVP_PKEY` to be used by many threads at once as long as
/// nobody mutates it; every operation here works on its own context, so a key is shared freely
/// across requests. Keys are parsed when a configuration loads, never per request, and a
/// verification starts from a copy of a context initialised once for its digest and padding.
package final class EVPKey: @unchecked Sendable {  // immutable after init; see above
    package enum Kind: Hashable, Sendable {
        case rsa(bits: Int)
        /// `P-256`, `P-384` or `P-521`; `nil` for any other curve.
        case ec(curve: String?)
        case ed25519
        case other
    }

    let pointer: OpaquePointer
    package let kind: Kind
    package let isPrivate: Bool

    private struct VerifierID: Hashable {
        var digest: DigestAlgorithm
        var padding: RSAPadding
    }

    /// `EVP_MD_CTX`s after `EVP_DigestVerifyInit` (and the PSS settings), made on first use.
    /// They are only ever copied, never used directly.
    private let verifiers = Mutex<[VerifierID: OpaquePointer]>([:])

    /// - Parameter pointer: a key whose reference the caller hands over.
    private init(takingOwnershipOf pointer: OpaquePointer, isPrivate: Bool) {
        self.pointer = pointer
        self.isPrivate = isPrivate
        switch EVP_PKEY_get_base_id(pointer) {
        case EVP_PKEY_RSA, EVP_PKEY_RSA_PSS:
            self.kind = .rsa(bits: Int(EVP_PKEY_get_bits(pointer)))
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            var curve: String?
            if EVP_PKEY_get_utf8_string_param(pointer, OSSL_PKEY_PARAM_GROUP_NAME, &name, name.count, &length) == 1 {
                let text = name.withUnsafeBufferPointer {
                    String(decoding: UnsafeRawBufferPointer($0).prefix(length), as: UTF8.self)
                }
                curve = Self.joseCurveNames[text]
            }
            self.kind = .ec(curve: curve)
        case EVP_PKEY_ED25519:
            self.kind = .ed25519
        default:
            self.kind = .other
        }
    }

    deinit {
        self.verifiers.withLock { for context in $0.values { EVP_MD_CTX_free(context) } }
        EVP_PKEY_free(self.pointer)
    }

    private static let joseCurveNames = ["prime256v1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"]
    private static let openSSLCurveNames = ["P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1"]

    // MARK: parsing

    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block.
    package static func publicKey(pem: [UInt8]) throws -> EVPKey {
        let parsed = pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = pc_bio_from_bytes(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }  // the BIO only borrows `pem`
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)  // +1 for us on success
        }
        guard let parsed else { throw OpenSSLError.capture("reading a PEM public key") }
        return try EVPKey(takingOwnershipOf: parsed, isPrivate: false).checked()
    }

    /// A PEM private key (PKCS#8, or the traditional RSA/EC forms).
    package static func privateKey(pem: [UInt8]) throws -> EVPKey {
        let parsed = pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = pc_bio_from_bytes(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)  // +1 for us on success
        }
        guard let parsed else { throw OpenSSLError.capture("reading a PEM private key") }
        return try EVPKey(takingOwnershipOf: parsed, isPrivate: true).checked()
    }

    /// Refuses RSA keys whose public part is not a real RSA key (RFC 8017 §3.1): with `e = 1`
    /// a "signature" is the padded message itself, so anyone could sign; an even `e` or `n`,
    /// or `e ≥ n`, is no RSA key either. Other kinds are checked when they are built.
    private func checked() throws -> EVPKey {
        guard case .rsa = self.kind else { return self }
        var e: OpaquePointer?
        var n: OpaquePointer?
        defer {
            BN_free(e)
            BN_free(n)
        }
        guard EVP_PKEY_get_bn_param(self.pointer, ParameterName.rsaE, &e) == 1, let e,
            EVP_PKEY_get_bn_param(self.pointer, ParameterName.rsaN, &n) == 1, let n
        else { throw OpenSSLError.capture("reading RSA parameters") }
        guard BN_is_odd(e) == 1, BN_num_bits(e) >= 2, BN_is_odd(n) == 1, BN_cmp(e, n) < 0 else {
            throw OpenSSLError(operation: "an RSA key needs an odd public exponent of at least 3, below an odd modulus", code: 0)
        }
        return self
    }

    /// An RSA public key from its modulus and exponent (JWK `n`, `e`), big-endian.
    package static func rsa(modulus: [UInt8], exponent: [UInt8]) throws -> EVPKey {
        let n = modulus.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        let e = exponent.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        // The builder keeps pointers to the numbers until `OSSL_PARAM_BLD_to_param`; free after.
        defer {
            BN_free(n)
            BN_free(e)
        }
        guard let n, let e else { throw OpenSSLError.capture("reading RSA parameters") }
        return try self.fromParameters(type: "RSA") { builder in
            guard OSSL_PARAM_BLD_push_BN(builder, ParameterName.rsaN, n) == 1,
                OSSL_PARAM_BLD_push_BN(builder, ParameterName.rsaE, e) == 1
            else { return nil }
            return OSSL_PARAM_BLD_to_param(builder)
        }.checked()
    }

    /// An EC public key from its curve (`P-256`…) and affine coordinates (JWK `x`, `y`).
    package static func ec(curve: String, x: [UInt8], y: [UInt8]) throws -> EVPKey {
        guard let group = Self.openSSLCurveNames[curve] else {
            throw OpenSSLError(operation: "unsupported curve \(curve)", code: 0)
        }
        let point = [0x04] + x + y  // uncompressed SEC1 point
        return try self.fromParameters(type: "EC") { builder in
            // The builder refers to `name` and `point` until `to_param`, so it runs inside both scopes.
            group.withCString { name in
                point.withUnsafeBytes { raw in
                    guard OSSL_PARAM_BLD_push_utf8_string(builder, ParameterName.groupName, name, 0) == 1,
                        OSSL_PARAM_BLD_push_octet_string(builder, ParameterName.publicKey, raw.baseAddress, raw.count) == 1
                    else { return nil }
                    return OSSL_PARAM_BLD_to_param(builder)
                }
            }
        }
    }

    /// An Ed25519 public key from its 32 raw bytes (JWK `x`).
    package static func ed25519(publicKey: [UInt8]) throws -> EVPKey {
        let parsed = publicKey.withUnsafeBufferPointer {
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count)
        }
        guard let parsed else { throw OpenSSLError.capture("reading an Ed25519 public key") }
        return EVPKey(takingOwnershipOf: parsed, isPrivate: false)
    }

    /// Builds a public key from OpenSSL 3 parameters. `build` pushes the parameters and
    /// returns `OSSL_PARAM_BLD_to_param`'s result while everything it pushed is still alive.
    private static func fromParameters(type: String, _ build: (OpaquePointer) -> UnsafeMutablePointer<OSSL_PARAM>?) throws
        -> EVPKey
    {
        guard let builder = OSSL_PARAM_BLD_new() else { throw OpenSSLError.capture("allocating parameters") }
        defer { OSSL_PARAM_BLD_free(builder) }
        guard let params = build(builder) else { throw OpenSSLError.capture("building \(type) key parameters") }
        defer { OSSL_PARAM_free(params) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type, nil) else {
            throw OpenSSLError.capture("creating a \(type) context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_fromdata_init(context) == 1,
            EVP_PKEY_fromdata(context, &key, PC_EVP_PKEY_PUBLIC_KEY, params) == 1, let key
        else { throw OpenSSLError.capture("building a \(type) public key") }
        let built = EVPKey(takingOwnershipOf: key, isPrivate: false)
        if case .ec = built.kind {
            // fromdata does not check that the point lies on the curve; a public-key check does.
            guard let check = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else { throw OpenSSLError.capture("checking an EC key") }
            defer { EVP_PKEY_CTX_free(check) }
            guard EVP_PKEY_public_check(check) == 1 else { throw OpenSSLError.capture("the EC point is not on the curve") }
        }
        return built
    }

    // MARK: signatures

    /// Padding for RSA signatures.
    package enum RSAPadding: Hashable, Sendable {
        case pkcs1
        /// PSS with MGF1 over the same digest and a salt as long as the digest (RFC 7518 §3.5).
        case pss
    }

    /// Verifies `signature` over `message`. `digest` is `nil` for Ed25519. For EC keys the
    /// signature must be DER (see ``ECDSASignature``).
    package func verify(
        signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, digest: DigestAlgorithm?,
        padding: RSAPadding = .pkcs1
    ) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        if let digest {
            guard let template = self.verifier(digest: digest, padding: padding),
                EVP_MD_CTX_copy_ex(context, template) == 1
            else {
                ERR_clear_error()
                return false
            }
        } else {
            // Ed25519 signs the message itself: there is no digest state worth keeping.
            guard Self.initVerify(context, key: self.pointer, digest: nil, padding: padding) else { return false }
        }
        let ok =
            EVP_DigestVerify(
                context, signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
                message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1
        if !ok { ERR_clear_error() }
        return ok
    }

    /// The initialised context for `digest` and `padding`, made once.
    private func verifier(digest: DigestAlgorithm, padding: RSAPadding) -> OpaquePointer? {
        let id = VerifierID(digest: digest, padding: padding)
        return self.verifiers.withLock { verifiers -> OpaquePointer? in
            if let template = verifiers[id] { return template }
            guard let template = EVP_MD_CTX_new() else { return nil }
            guard Self.initVerify(template, key: self.pointer, digest: digest, padding: padding) else {
                EVP_MD_CTX_free(template)
                return nil
            }
            verifiers[id] = template
            return template
        }
    }

    private static func initVerify(_ context: OpaquePointer, key: OpaquePointer, digest: DigestAlgorithm?, padding: RSAPadding) -> Bool {
        var keyContext: OpaquePointer?
        guard EVP_DigestVerifyInit(context, &keyContext, digest?.evp, nil, key) == 1 else {
            ERR_clear_error()  // never leave errors queued for the next caller
            return false
        }
        if padding == .pss, let keyContext, let digest {
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, Int32(digest.byteCount)) == 1,
                EVP_PKEY_CTX_set_rsa_mgf1_md(keyContext, digest.evp) == 1
            else {
                ERR_clear_error()
                return false
            }
        }
        return true
    }

    /// Signs `message` with this private key. EC signatures come back DER-encoded.
    package func sign(message: UnsafeRawBufferPointer, digest: DigestAlgorithm?, padding: RSAPadding = .pkcs1) throws
        -> [UInt8]
    {
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLError.capture("allocating a digest context") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestSignInit(context, &keyContext, digest?.evp, nil, self.pointer) == 1 else {
            throw OpenSSLError.capture("starting a signature")
        }
        if padding == .pss, let keyContext, let digest {
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, Int32(digest.byteCount)) == 1,
                EVP_PKEY_CTX_set_rsa_mgf1_md(keyContext, digest.evp) == 1
            else { throw OpenSSLError.capture("setting PSS padding") }
        }
        let input = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var length = 0
        guard EVP_DigestSign(context, nil, &length, input, message.count) == 1 else {
            throw OpenSSLError.capture("sizing a signature")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard signature.withUnsafeMutableBufferPointer({ EVP_DigestSign(context, $0.baseAddress, &length, input, message.count) }) == 1
        else { throw OpenSSLError.capture("signing") }
        return Array(signature.prefix(length))
    }
}


/// OpenSSL parameter names as C strings that live as long as the process: the parameter
/// builder keeps the name pointers it is given, so Swift's temporary bridged strings will not do.
private enum ParameterName {
    nonisolated(unsafe) static let rsaN = UnsafePointer(strdup(OSSL_PKEY_PARAM_RSA_N)!)  // never freed, never written
    nonisolated(unsafe) static let rsaE = UnsafePointer(strdup(OSSL_PKEY_PARAM_RSA_E)!)
    nonisolated(unsafe) static let groupName = UnsafePointer(strdup(OSSL_PKEY_PARAM_GROUP_NAME)!)
    nonisolated(unsafe) static let publicKey = UnsafePointer(strdup(OSSL_PKEY_PARAM_PUB_KEY)!)
}
