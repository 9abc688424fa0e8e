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
        var candidate = address
        if candidate.count == 16 && self.network.count == 4 && IPAddressBytes.isIPv4Mapped(candidate) {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == self.network.count else { return false }
        return IPAddressBytes.masked(candidate, self.prefixLength) == self.network
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

    static func masked(_ bytes: [UInt8], _ prefixLength: Int) -> [UInt8] {
        var result = bytes
        for index in result.indices {
            let bitsHere = max(0, min(8, prefixLength - index * 8))
            result[index] &= bitsHere == 0 ? 0 : ~UInt8(0) << (8 - bitsHere)
        }
        return result
    }

    static func isIPv4Mapped(_ bytes: [UInt8]) -> Bool {
        bytes.count == 16 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
    }
}
