/// base64url without padding (RFC 7515 §2), strict: no padding, no white space, no characters
/// outside the alphabet, and no non-zero bits left over in the last character.
package enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    package static func decode<Bytes: Collection>(_ input: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        if let decoded = input.withContiguousStorageIfAvailable({ Self.decode(contiguous: $0) }) { return decoded }
        return Array(input).withUnsafeBufferPointer { Self.decode(contiguous: $0) }
    }

    private static func decode(contiguous input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = input.count
        if count % 4 == 1 { return nil }
        var valid = true
        let out = Self.table.withUnsafeBufferPointer { table in
            [UInt8](unsafeUninitializedCapacity: count * 3 / 4) { out, written in
                var accumulator: UInt32 = 0
                var bits = 0
                var length = 0
                for byte in input {
                    let value = table[Int(byte)]
                    if value == 0xFF {
                        valid = false
                        break
                    }
                    accumulator = accumulator << 6 | UInt32(value)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        out[length] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bits))
                        length += 1
                    }
                }
                // Leftover bits must be zero, so each byte string has exactly one encoding.
                if bits > 0 && accumulator & ((1 << UInt32(bits)) - 1) != 0 { valid = false }
                written = length
            }
        }
        return valid ? out : nil
    }

    package static func encode<Bytes: Sequence>(_ input: Bytes) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in input {
            accumulator = accumulator << 8 | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(Self.alphabet[Int((accumulator >> UInt32(bits)) & 0x3F)])
            }
        }
        if bits > 0 { out.append(Self.alphabet[Int((accumulator << UInt32(6 - bits)) & 0x3F)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
