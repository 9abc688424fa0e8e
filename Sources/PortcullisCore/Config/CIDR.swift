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
        guard !trustedProxies.isEmpty, !forwardedFor.isEmpty, let bytes = IPAddressBytes.parse(peer),
            trustedProxies.contains(where: { $0.contains(bytes) })
        else { return peer }
        var client = peer
        for field in forwardedFor.reversed() {
            for entry in field.split(separator: ",", omittingEmptySubsequences: true).reversed() {
                let text = Self.address(entry.trimmingSpaces())
                guard let hop = IPAddressBytes.parse(text) else { return client }
                client = text
                if !trustedProxies.contains(where: { $0.contains(hop) }) { return client }
            }
        }
        return client
    }

    /// An entry without the brackets or port some proxies add (`[::1]:80`, `10.0.0.1:80`).
    private static func address(_ entry: String) -> String {
        if entry.first == "[", let close = entry.firstIndex(of: "]") {
            return String(entry[entry.index(after: entry.startIndex)..<close])
        }
        if let colon = entry.firstIndex(of: ":"), entry.lastIndex(of: ":") == colon { return String(entry[..<colon]) }
        return String(entry)
    }
}
