/// A span of time in whole milliseconds.
package typealias Milliseconds = Int64

/// Parsers for the scalar forms the configuration accepts: durations, sizes, listen addresses.
package enum ScalarParsers {
    /// The longest duration any setting accepts: ten years. Longer values are typing mistakes,
    /// and every duration must stay representable in nanoseconds once added to a clock.
    package static let maximumDuration: Milliseconds = 3650 * 86_400_000
    /// The largest size any setting accepts: 1 TiB.
    package static let maximumSize = 1 << 40

    /// `250ms`, `30s`, `5m`, `2h`, `14d`, or `0`. Values beyond `Int64` saturate, so that callers
    /// can report them as too large rather than as malformed.
    package static func duration(_ text: String) -> Milliseconds? {
        if text == "0" { return 0 }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            // "5ms" also ends in "s": only accept when what precedes the unit is all digits.
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.count <= 12,
                let value = Int64(digits)
            else { continue }
            let (product, overflow) = value.multipliedReportingOverflow(by: factor)
            return overflow ? .max : product
        }
        return nil
    }

    /// `512KiB`, `10MiB`, `1GiB`, or a plain byte count. Decimal units (`MB`) are refused: they
    /// are ambiguous, and a limit that is off by 5% is a limit nobody meant. Values beyond `Int`
    /// saturate.
    package static func size(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1), ("", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            guard !digits.isEmpty, digits.count <= 12, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(digits)
            else { continue }
            let (product, overflow) = value.multipliedReportingOverflow(by: factor)
            return overflow ? .max : product
        }
        return nil
    }

    /// `HOST:PORT` or `[IPv6]:PORT`. The host is returned without brackets.
    package static func listenAddress(_ text: String) -> (host: String, port: Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // an IPv6 literal needs brackets
        }
        guard !host.isEmpty, !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            portText.count <= 5, let port = Int(portText), port <= 65535
        else { return nil }
        // An IP literal that parses, or a host name (letters, digits, '-' and '.'); anything else
        // would only fail when the gateway binds.
        let literal = IPAddressBytes.parse(String(host)) != nil
        if text.hasPrefix("[") {
            guard literal, host.contains(":") else { return nil }
        } else if !literal {
            let isName =
                host.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
                && host.utf8.contains { $0.isASCIILetter }
            guard isName else { return nil }
        }
        return (String(host), port)
    }
}

extension UInt8 {
    fileprivate var isASCIILetter: Bool { (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) }
    fileprivate var isASCIILetterOrDigit: Bool { self.isASCIILetter || (0x30...0x39).contains(self) }
}
