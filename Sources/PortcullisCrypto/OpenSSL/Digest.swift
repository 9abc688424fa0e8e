internal import CPortcullisOpenSSL

/// The SHA-2 digests JOSE uses.
package enum DigestAlgorithm: Sendable, Hashable {
    case sha256
    case sha384
    case sha512

    var evp: OpaquePointer {
        switch self {
        case .sha256: return EVP_sha256()
        case .sha384: return EVP_sha384()
        case .sha512: return EVP_sha512()
        }
    }

    package var byteCount: Int {
        switch self {
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }

    /// The digest of `bytes`.
    package func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { pointer in
            EVP_Digest(bytes.baseAddress, bytes.count, pointer.baseAddress, &length, self.evp, nil)
        }
        precondition(ok == 1, "EVP_Digest failed")
        return Array(out.prefix(Int(length)))
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
