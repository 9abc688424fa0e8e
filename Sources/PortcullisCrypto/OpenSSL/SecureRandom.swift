internal import CPortcullisOpenSSL

/// Random bytes from OpenSSL's CSPRNG.
package enum SecureRandom {
    /// Fills `count` bytes. OpenSSL's RNG only fails when it cannot seed, in which case nothing
    /// secure can be done, so that is treated as a fatal condition rather than returned.
    package static func bytes(_ count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let result = buffer.withUnsafeMutableBytes { raw in
            RAND_bytes(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count))
        }
        precondition(result == 1, "OpenSSL's random generator is not seeded")
        return buffer
    }

    /// `count` random bytes as lower-case hex.
    package static func hex(_ count: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self.bytes(count) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
