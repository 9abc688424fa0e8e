internal import CPortcullisOpenSSL
internal import Crypto

/// The SHA-2 digests JOSE uses.
package enum DigestAlgorithm: Sendable, Hashable {
    case sha256
    case sha384
    case sha512

    /// OpenSSL's implementation, for HMACs and signatures, fetched once: a fetched `EVP_MD` is
    /// immutable and may be shared between threads, and passing it spares every operation
    /// OpenSSL 3's implicit fetch (a lock and a lookup in the provider store).
    var evp: OpaquePointer {
        switch self {
        case .sha256: return Self.fetched.sha256
        case .sha384: return Self.fetched.sha384
        case .sha512: return Self.fetched.sha512
        }
    }

    private struct Fetched: @unchecked Sendable {  // immutable OpenSSL objects, never freed
        let sha256: OpaquePointer
        let sha384: OpaquePointer
        let sha512: OpaquePointer
    }

    private static let fetched = Fetched(
        sha256: EVP_MD_fetch(nil, "SHA2-256", nil) ?? EVP_sha256(),
        sha384: EVP_MD_fetch(nil, "SHA2-384", nil) ?? EVP_sha384(),
        sha512: EVP_MD_fetch(nil, "SHA2-512", nil) ?? EVP_sha512())

    package var byteCount: Int {
        switch self {
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }

    /// The digest of `bytes`.
    package func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 64) { buffer, count in
            count = self.hash(bytes, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Writes the digest of `bytes` into `out` (at least ``byteCount`` bytes) and returns its
    /// length, allocating nothing.
    ///
    /// Plain digests come from swift-crypto (BoringSSL's SHA-2, already in the binary for TLS
    /// and PostgreSQL): a context on the stack and one direct call. OpenSSL 3's `EVP_Digest`
    /// allocates two contexts and dispatches through its provider, and on the verified-token
    /// cache's path, which hashes every presented token, that cost a server about 1.5 µs a
    /// request (bench/README.md, "The cache key's digest").
    package func hash(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= self.byteCount, "digest buffer too small")
        let copy = { (digest: UnsafeRawBufferPointer) -> Int in
            out.copyMemory(from: digest)
            return digest.count
        }
        switch self {
        case .sha256: return SHA256.hash(data: bytes).withUnsafeBytes(copy)
        case .sha384: return SHA384.hash(data: bytes).withUnsafeBytes(copy)
        case .sha512: return SHA512.hash(data: bytes).withUnsafeBytes(copy)
        }
    }

    package func hash<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        let array = Array(bytes)
        return array.withUnsafeBytes { self.hash($0) }
    }

    /// HMAC of `message` under `key`.
    package func hmac(key: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        // HMAC() wants a non-null key pointer even for an empty key.
        let result = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { spare in
            out.withUnsafeMutableBufferPointer { pointer in
                HMAC(
                    self.evp, key.baseAddress ?? UnsafeRawPointer(spare.baseAddress!), Int32(key.count),
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count, pointer.baseAddress, &length)
            }
        }
        precondition(result != nil, "HMAC failed")
        return Array(out.prefix(Int(length)))
    }
}

/// Comparisons whose time does not depend on where the inputs differ.
package enum ConstantTime {
    package static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
    }

    package static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { left in b.withUnsafeBytes { right in Self.equals(left, right) } }
    }
}
