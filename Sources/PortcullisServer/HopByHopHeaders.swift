import NIOHTTP1

/// Header filtering for both directions of the proxy (RFC 9110 §7.6.1).
enum HopByHopHeaders {
    /// Whether `name` never crosses the gateway in either direction (`Connection`, `Keep-Alive`,
    /// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`), in any case, without
    /// building a lower-case copy.
    static func isAlways(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.equalsIgnoringASCIICase("te")
        case 7: return name.equalsIgnoringASCIICase("trailer") || name.equalsIgnoringASCIICase("upgrade")
        case 10: return name.equalsIgnoringASCIICase("connection") || name.equalsIgnoringASCIICase("keep-alive")
        case 16: return name.equalsIgnoringASCIICase("proxy-connection")
        case 17: return name.equalsIgnoringASCIICase("transfer-encoding")
        default: return false
        }
    }

    /// The lower-case names the `Connection` header lists: they are hop-by-hop too.
    static func listedInConnection(_ headers: HTTPHeaders) -> Set<String> {
        var names = Set<String>()
        for value in headers[canonicalForm: "connection"] {
            let name = value.trimmingASCIISpaces().lowercased()
            if !name.isEmpty { names.insert(name) }
        }
        return names
    }
}

extension String {
    /// Equality with `lowercase` (ASCII, already lower-case), ignoring the case of ASCII letters.
    func equalsIgnoringASCIICase(_ lowercase: String) -> Bool {
        guard self.utf8.count == lowercase.utf8.count else { return false }
        return zip(self.utf8, lowercase.utf8).allSatisfy { byte, expected in
            (byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte) == expected
        }
    }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
