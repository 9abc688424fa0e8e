/// Header filtering for both directions of the proxy (RFC 9110 §7.6.1).
package enum HopByHopHeaders {
    /// Whether `name` never crosses the gateway in either direction (`Connection`, `Keep-Alive`,
    /// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`), in any case, without
    /// building a lower-case copy.
    package static func isAlways(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.equalsIgnoringASCIICase("te")
        case 7: return name.equalsIgnoringASCIICase("trailer") || name.equalsIgnoringASCIICase("upgrade")
        case 10: return name.equalsIgnoringASCIICase("connection") || name.equalsIgnoringASCIICase("keep-alive")
        case 16: return name.equalsIgnoringASCIICase("proxy-connection")
        case 17: return name.equalsIgnoringASCIICase("transfer-encoding")
        default: return false
        }
    }

    /// The names the gateway sets itself on the way upstream, besides the identity headers, and
    /// `X-Real-IP`, which only a trusted proxy may send.
    package static let gatewaySet = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "x-real-ip"]

    /// Whether `name`, which has an underscore, would read as one of `names` (lower-case, with
    /// dashes) to an upstream that treats `_` as `-` (CGI's `HTTP_X_AUTH_SUBJECT`, and
    /// frameworks built on it): such a header could pose as one the gateway sets, so it is
    /// dropped.
    package static func posesAs(_ name: String, _ names: some Sequence<String>) -> Bool {
        names.contains { name.equalsIgnoringASCIICase($0, underscoreAsDash: true) }
    }

    /// The lower-case names the `Connection` fields list: they are hop-by-hop too. Works on a
    /// request's `HTTPHeaders` and on an upstream response's header list alike.
    package static func listedInConnection(_ headers: some Sequence<(name: String, value: String)>) -> Set<String> {
        var names = Set<String>()
        for (name, value) in headers where name.equalsIgnoringASCIICase("connection") {
            for token in value.split(separator: ",") {
                let listed = token.trimmingASCIISpaces().lowercased()
                if !listed.isEmpty { names.insert(listed) }
            }
        }
        return names
    }
}

extension String {
    /// Equality with `lowercase` (ASCII, already lower-case), ignoring the case of ASCII letters,
    /// and with `underscoreAsDash`, reading `_` as `-` (as CGI-style header names do).
    @inlinable
    package func equalsIgnoringASCIICase(_ lowercase: String, underscoreAsDash: Bool = false) -> Bool {
        // Header names are compared many times a request: a length check first, then one pass
        // over both strings' contiguous bytes (native and small strings always have them).
        guard self.utf8.count == lowercase.utf8.count else { return false }
        let compared = self.utf8.withContiguousStorageIfAvailable { mine in
            lowercase.utf8.withContiguousStorageIfAvailable { mine.equalsIgnoringASCIICase($0, underscoreAsDash: underscoreAsDash) }
        }
        if let compared, let result = compared { return result }
        return self.utf8.equalsIgnoringASCIICase(lowercase.utf8, underscoreAsDash: underscoreAsDash)
    }
}

extension Collection<UInt8> {
    /// The same comparison over bytes: `lowercase` is ASCII and already lower-case.
    @inlinable
    package func equalsIgnoringASCIICase(_ lowercase: some Collection<UInt8>, underscoreAsDash: Bool = false) -> Bool {
        guard self.count == lowercase.count else { return false }
        var other = lowercase.startIndex
        for byte in self {
            let expected = lowercase[other]
            lowercase.formIndex(after: &other)
            if underscoreAsDash && byte == UInt8(ascii: "_") {
                if expected != UInt8(ascii: "-") { return false }
            } else if (byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte) != expected {
                return false
            }
        }
        return true
    }
}

extension Substring {
    package func trimmingASCIISpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
