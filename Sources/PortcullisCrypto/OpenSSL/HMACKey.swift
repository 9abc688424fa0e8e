internal import CPortcullisOpenSSL
import Synchronization

/// An HMAC secret with an OpenSSL MAC context already keyed for each SHA-2 digest.
///
/// A MAC then runs on a keyed context taken from a small pool (or copied from the template when
/// the pool is empty) and re-initialised with the key it already holds: no algorithm fetch, no
/// context set-up, no key schedule and no allocation per call, which is most of what a one-shot
/// `HMAC()` costs on a short JWS.
package final class HMACKey: @unchecked Sendable {  // the templates are immutable after init and only copied
    /// The raw secret.
    package let bytes: [UInt8]
    private let sha256: OpaquePointer?
    private let sha384: OpaquePointer?
    private let sha512: OpaquePointer?
    /// Keyed contexts between uses, by digest; at most `poolLimit` each.
    private let pool = Mutex<[DigestAlgorithm: [PooledContext]]>([:])
    private static let poolLimit = 16

    /// A context owned by the pool: only the thread that takes it out uses it.
    private struct PooledContext: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// OpenSSL's HMAC implementation, fetched once. A fetched EVP_MAC is immutable and may be
    /// shared between threads.
    nonisolated(unsafe) private static let algorithm: OpaquePointer? = EVP_MAC_fetch(nil, "HMAC", nil)

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.sha256 = Self.keyedContext(bytes, digest: "SHA256")
        self.sha384 = Self.keyedContext(bytes, digest: "SHA384")
        self.sha512 = Self.keyedContext(bytes, digest: "SHA512")
    }

    deinit {
        self.pool.withLock { pool in
            for context in pool.values.joined() { EVP_MAC_CTX_free(context.pointer) }
        }
        EVP_MAC_CTX_free(self.sha256)
        EVP_MAC_CTX_free(self.sha384)
        EVP_MAC_CTX_free(self.sha512)
    }

    private static func keyedContext(_ key: [UInt8], digest: String) -> OpaquePointer? {
        // An empty secret is left to the one-shot path, which accepts it.
        guard !key.isEmpty, let algorithm = Self.algorithm, let context = EVP_MAC_CTX_new(algorithm) else { return nil }
        let ok = digest.withCString { name in
            "digest".withCString { parameter in
                var parameters = [
                    OSSL_PARAM_construct_utf8_string(parameter, UnsafeMutablePointer(mutating: name), 0),
                    OSSL_PARAM_construct_end(),
                ]
                return key.withUnsafeBytes { EVP_MAC_init(context, $0.baseAddress, $0.count, &parameters) }
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(context)
            return nil
        }
        return context
    }

    private func template(_ digest: DigestAlgorithm) -> OpaquePointer? {
        switch digest {
        case .sha256: return self.sha256
        case .sha384: return self.sha384
        case .sha512: return self.sha512
        }
    }

    /// The MAC of `message` under this key.
    package func mac(_ digest: DigestAlgorithm, _ message: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 64) { buffer, count in
            count = self.mac(digest, message, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Whether `tag` is the MAC of `message`, compared in constant time.
    package func verify(_ digest: DigestAlgorithm, _ message: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { buffer in
            let count = self.mac(digest, message, into: buffer)
            return ConstantTime.equals(UnsafeRawBufferPointer(rebasing: buffer[..<count]), tag)
        }
    }

    /// Writes the MAC into `out` (at least 64 bytes) and returns its length.
    private func mac(_ digest: DigestAlgorithm, _ message: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        guard let template = self.template(digest), let context = self.take(digest, template: template) else {
            let tag = self.bytes.withUnsafeBytes { digest.hmac(key: $0, message: message) }
            out.copyBytes(from: tag)
            return tag.count
        }
        var length = 0
        // A null key re-initialises the context with the key it was given (OpenSSL's HMAC keeps
        // the keyed inner and outer states), so a pooled context starts each MAC afresh.
        let ok = EVP_MAC_init(context, nil, 0, nil) == 1
            && EVP_MAC_update(context, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1
            && EVP_MAC_final(context, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, out.count) == 1
        precondition(ok, "HMAC failed")
        self.give(back: context, digest)
        return length
    }

    /// A keyed context for `digest`: a pooled one, or a fresh copy of the template.
    private func take(_ digest: DigestAlgorithm, template: OpaquePointer) -> OpaquePointer? {
        if let pooled = self.pool.withLock({ $0[digest]?.popLast() }) { return pooled.pointer }
        return EVP_MAC_CTX_dup(template)
    }

    private func give(back context: OpaquePointer, _ digest: DigestAlgorithm) {
        let kept = self.pool.withLock { pool -> Bool in
            guard pool[digest, default: []].count < Self.poolLimit else { return false }
            pool[digest, default: []].append(PooledContext(pointer: context))
            return true
        }
        if !kept { EVP_MAC_CTX_free(context) }
    }
}
