/// Standard base64 (RFC 4648 §4) with padding, for Basic credentials (RFC 7617).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { value |= UInt32(byte) << (16 - 8 * UInt32(offset)) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? Self.alphabet[Int((value >> (18 - 6 * UInt32(position))) & 0x3F)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict: a multiple of four characters, padding only at the end.
    static func decode(_ text: Substring) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count / 4 * 3)
        var index = 0
        while index < bytes.count {
            var value: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let byte = bytes[index + offset]
                if byte == UInt8(ascii: "=") {
                    guard index + 4 == bytes.count, offset >= 2 else { return nil }
                    padding += 1
                    value <<= 6
                    continue
                }
                guard padding == 0 else { return nil }
                let digit = Self.table[Int(byte)]
                guard digit != 0xFF else { return nil }
                value = value << 6 | UInt32(digit)
            }
            out.append(UInt8(truncatingIfNeeded: value >> 16))
            if padding < 2 { out.append(UInt8(truncatingIfNeeded: value >> 8)) }
            if padding < 1 { out.append(UInt8(truncatingIfNeeded: value)) }
            index += 4
        }
        return out
    }
}

/// Reading a parameter out of a query string or a `Cookie` header.
enum QueryParameters {
    /// The percent-decoded values of every `name=` parameter of `query`, in order.
    static func values(of name: String, in query: String?) -> [[UInt8]] {
        guard let query else { return [] }
        var found: [[UInt8]] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let key = self.decode(parts[0]), key == Array(name.utf8), let value = self.decode(parts[1])
            else { continue }
            found.append(value)
        }
        return found
    }

    /// The values of every cookie called `name` in one `Cookie` header (RFC 6265 §4.2.1:
    /// `name=value` pairs separated by `;`), without surrounding white space or double quotes.
    static func cookies(_ name: String, in header: String) -> [Substring] {
        var found: [Substring] = []
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].trimmingSpaces() == name else { continue }
            var value = Substring(parts[1].trimmingSpaces())
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            found.append(value)
        }
        return found
    }

    private static func decode(_ text: Substring) -> [UInt8]? {
        var out = [UInt8]()
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                out.append(value)
            } else {
                out.append(byte)
            }
        }
        return out
    }
}
