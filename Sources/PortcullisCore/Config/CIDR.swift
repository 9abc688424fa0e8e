#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP network (`10.0.0.0/8`, `::1/128`, or a bare address), for `trusted_proxies`.
package struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    package let network: [UInt8]
    package let prefixLength: Int
    private let text: String

    package init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddressBytes.parse(String(parts[0])) else { return nil }
        let maximum = address.count * 8
        var length = maximum
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(parts[1]), value <= maximum
            else { return nil }
            length = value
        }
        self.network = IPAddressBytes.masked(address, length)
        self.prefixLength = length
        self.text = text
    }

    /// Whether `address` (4 or 16 bytes) lies in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) is compared as IPv4.
    package func contains(_ address: [UInt8]) -> Bool {
        address.withUnsafeBytes { self.contains($0) }
    }

    /// Whether `address` (4 or 16 bytes) lies in this network; compares in place, for the
    /// checks every request makes.
    package func contains(_ address: UnsafeRawBufferPointer) -> Bool {
        var candidate = address
        if candidate.count == 16 && self.network.count == 4 && IPAddressBytes.isIPv4Mapped(candidate) {
            candidate = UnsafeRawBufferPointer(rebasing: candidate[12...])
        }
        guard candidate.count == self.network.count else { return false }
        var remaining = self.prefixLength
        var index = 0
        while remaining > 0 {
            let bits = min(8, remaining)
            // `network` is masked already: only the prefix's bits are compared.
            if candidate[index] & (~UInt8(0) << (8 - bits)) != self.network[index] { return false }
            remaining -= bits
            index += 1
        }
        return true
    }

    package var description: String { self.text }
}

/// Textual and binary forms of IP addresses.
package enum IPAddressBytes {
    package static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// Calls `body` with the 4 (IPv4) or 16 (IPv6) bytes of the address `text` names, held
    /// on the stack; `nil` when `text` is no IP address.
    package static func withParsed<Result>(_ text: String, _ body: (UnsafeRawBufferPointer) -> Result) -> Result? {
        // Every request parses its peer's address, and a proxy's: most are plain IPv4.
        if let address = Self.dottedQuad(text.utf8) { return withUnsafeBytes(of: address.bigEndian, body) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4, body)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6, body)
        }
        return nil
    }

    /// A dotted-quad IPv4 address (four decimal parts of 0–255 without leading zeros, between
    /// single dots) as a number. That is exactly the form `inet_pton(AF_INET)` accepts, so
    /// `nil` here means it would refuse the text too.
    static func dottedQuad(_ text: String.UTF8View) -> UInt32? {
        guard text.count >= 7 && text.count <= 15 else { return nil }
        var address: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var dots = 0
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                address = address << 8 | part
                part = 0
                digits = 0
                dots += 1
            } else if byte &- UInt8(ascii: "0") < 10 {
                if digits > 0 && part == 0 { return nil }  // a leading zero
                part = part * 10 + UInt32(byte &- UInt8(ascii: "0"))
                digits += 1
                guard part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, dots == 3 else { return nil }
        return address << 8 | part
    }

    /// Whether the address `text` names lies in one of `networks`; `false` when it is no address.
    package static func isIn(_ networks: [CIDR], _ text: String) -> Bool {
        Self.withParsed(text) { address in networks.contains { $0.contains(address) } } ?? false
    }

    static func masked(_ bytes: [UInt8], _ prefixLength: Int) -> [UInt8] {
        var result = bytes
        for index in result.indices {
            let bitsHere = max(0, min(8, prefixLength - index * 8))
            result[index] &= bitsHere == 0 ? 0 : ~UInt8(0) << (8 - bitsHere)
        }
        return result
    }

    static func isIPv4Mapped(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count == 16 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
    }
}

/// The address a request comes from, as the login throttle and the access log count it.
package enum ClientAddress {
    /// The peer's address, or, when the peer is a trusted proxy, the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (every hop to its right was
    /// appended by a proxy the gateway trusts; entries to its left are whatever the client said).
    /// An entry that is no IP address ends the walk at the last trusted hop.
    /// - Parameters:
    ///   - peer: the connection's peer address, as text.
    ///   - forwardedFor: the `X-Forwarded-For` field values, in the order received.
    package static func resolve(peer: String, forwardedFor: [String], trustedProxies: [CIDR]) -> String {
        guard !trustedProxies.isEmpty, !forwardedFor.isEmpty, IPAddressBytes.isIn(trustedProxies, peer) else { return peer }
        var client = peer
        for field in forwardedFor.reversed() {
            // The entries from the right, split at the ASCII commas between them.
            var rest = Substring(field)
            while !rest.isEmpty {
                let entry: Substring
                if let comma = rest.utf8.lastIndex(of: UInt8(ascii: ",")) {
                    entry = rest[rest.utf8.index(after: comma)...]
                    rest = rest[..<comma]
                } else {
                    entry = rest
                    rest = rest[rest.endIndex...]
                }
                guard !entry.isEmpty else { continue }
                let text = String(Self.address(Self.trimmed(entry)))
                guard let trusted = IPAddressBytes.withParsed(text, { hop in trustedProxies.contains { $0.contains(hop) } })
                else { return client }
                client = text
                if !trusted { return client }
            }
        }
        return client
    }

    private static func trimmed(_ entry: Substring) -> Substring {
        var text = entry
        while let first = text.utf8.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
            text = text[text.utf8.index(after: text.startIndex)...]
        }
        while let last = text.utf8.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            text = text[..<text.utf8.index(before: text.endIndex)]
        }
        return text
    }

    /// An entry without the brackets or port some proxies add (`[::1]:80`, `10.0.0.1:80`).
    private static func address(_ entry: Substring) -> Substring {
        let bytes = entry.utf8
        if bytes.first == UInt8(ascii: "["), let close = bytes.firstIndex(of: UInt8(ascii: "]")) {
            return entry[bytes.index(after: entry.startIndex)..<close]
        }
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")), bytes.lastIndex(of: UInt8(ascii: ":")) == colon {
            return entry[..<colon]
        }
        return entry
    }
}
