/// A request target after normalization (contract §3): what is matched is exactly what is
/// forwarded.
package struct RequestTarget: Hashable, Sendable {
    /// The normalized path, always starting with `/`, ASCII only.
    package var path: String
    /// The query without its `?`, byte for byte as the client sent it; `nil` when absent.
    package var query: String?
    /// The authority of an absolute-form target (`http://host/…`), which replaces `Host`.
    package var authority: String?

    package enum Refusal: Error, Hashable, Sendable {
        case notOriginOrAbsoluteForm
        case encodedSlash
        case encodedBackslash
        case backslash
        case nulByte
        case controlCharacter
        case badPercentEncoding
        case nonASCII
        case climbsAboveRoot
        case fragment
        case badAuthority
        case dotSegmentParameter

        /// The JSON `detail` of the 400 answer.
        package var detail: String {
            switch self {
            case .notOriginOrAbsoluteForm: return "Invalid request target"
            case .encodedSlash: return "Encoded slash in path"
            case .encodedBackslash, .backslash: return "Backslash in path"
            case .nulByte: return "NUL byte in path"
            case .controlCharacter: return "Control character in path"
            case .badPercentEncoding: return "Invalid percent-encoding in path"
            case .nonASCII: return "Non-ASCII byte in request target"
            case .climbsAboveRoot: return "Path climbs above the root"
            case .fragment: return "Fragment in request target"
            case .badAuthority: return "Invalid authority in request target"
            case .dotSegmentParameter: return "Path parameter on a dot-segment"
            }
        }
    }

    /// Whether a `Host` field value is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2):
    /// a name of unreserved and sub-delim characters, or an IPv6 (or IPvFuture) literal in
    /// brackets, then digits only after the colon. Stricter than RFC 3986 in two ways: no
    /// percent-encodings and no `,` (no DNS name has either, and a comma would make the value
    /// read as a list of hosts wherever it is forwarded). A name with an empty label (`.a`,
    /// `a..b`, `a.b..`) is refused too: the one trailing dot of a fully qualified name is dropped
    /// for matching, so a second one would make the name miss the routes it names. Anything else
    /// is answered 400 (RFC 9112 §3.2), in a `Host` field and in the authority of an absolute-form
    /// target alike.
    package static func isValidHost(_ value: String) -> Bool {
        var bytes = value.utf8[...]
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return false }
            let literal = bytes[bytes.index(after: bytes.startIndex)..<close]
            if let first = literal.first, first | 0x20 == UInt8(ascii: "v") {
                // IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
                let rest = literal.dropFirst()
                guard let dot = rest.firstIndex(of: UInt8(ascii: ".")), dot > rest.startIndex,
                    rest[..<dot].allSatisfy(Self.isHexDigit), rest.index(after: dot) < rest.endIndex,
                    rest[rest.index(after: dot)...].allSatisfy({ Self.isRegNameByte($0) || $0 == UInt8(ascii: ":") })
                else { return false }
            } else {
                // IPv6address (an embedded IPv4 part has dots): the shape, not every rule of it.
                guard literal.contains(UInt8(ascii: ":")),
                    literal.allSatisfy({ Self.isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
                else { return false }
            }
            bytes = bytes[bytes.index(after: close)...]
        } else {
            let end = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
            let name = bytes[..<end]
            guard name.allSatisfy(Self.isRegNameByte), !Self.hasEmptyLabel(name) else { return false }
            bytes = bytes[end...]
        }
        guard let colon = bytes.first else { return true }
        guard colon == UInt8(ascii: ":") else { return false }
        return bytes.dropFirst().allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// Whether a non-empty name starts with a dot or has two in a row (which covers two
    /// trailing dots). One trailing dot is the root label of a fully qualified name, not an
    /// empty one.
    private static func hasEmptyLabel(_ name: Substring.UTF8View.SubSequence) -> Bool {
        var previousWasDot = true
        for byte in name {
            let isDot = byte == UInt8(ascii: ".")
            if isDot && previousWasDot { return true }
            previousWasDot = isDot
        }
        return false
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66)
    }

    /// unreserved / sub-delims (RFC 3986 §2.2, §2.3), except `,`: a comma would make the value
    /// read as a list of hosts wherever it is forwarded.
    private static func isRegNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): return true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default: return false
        }
    }

    package init(path: String, query: String?, authority: String?) {
        self.path = path
        self.query = query
        self.authority = authority
    }

    /// Normalizes a raw request target.
    ///
    /// 1. origin-form `/…` or absolute-form `http(s)://authority/…`, else refused;
    /// 2. percent-encoded unreserved characters decoded, other escapes kept with upper-case hex;
    /// 3. `%2F`, `%5C`, `%00`, a raw `\` and control characters (raw or encoded) refused;
    /// 4. dot-segments removed, and a path that climbs above the root refused;
    /// 5. with `mergeSlashes`, runs of `/` become one;
    /// 6. the query is kept byte for byte.
    /// - Parameter shortcut: `false` runs every step even on a path already in normal form (for
    ///   tests that check the shortcut against the full steps).
    package static func normalize(_ raw: String, mergeSlashes: Bool, shortcut: Bool = true) -> Result<RequestTarget, Refusal> {
        var utf8 = raw.utf8[...]
        var authority: String?
        if utf8.first == UInt8(ascii: "/") {
            // origin-form
        } else if let afterScheme = Self.dropScheme(utf8) {
            let end = afterScheme.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? afterScheme.endIndex
            let authorityBytes = afterScheme[afterScheme.startIndex..<end]
            guard !authorityBytes.isEmpty, !authorityBytes.contains(UInt8(ascii: "@")),
                authorityBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            else { return .failure(.notOriginOrAbsoluteForm) }
            let text = String(decoding: authorityBytes, as: UTF8.self)
            // It stands in for Host, so it is held to the same rule (and cannot be `:80`).
            guard authorityBytes.first != UInt8(ascii: ":"), Self.isValidHost(text) else { return .failure(.badAuthority) }
            authority = text
            utf8 = afterScheme[end...]
        } else {
            return .failure(.notOriginOrAbsoluteForm)
        }

        var query: String?
        var pathBytes = utf8
        if let mark = utf8.firstIndex(of: UInt8(ascii: "?")) {
            pathBytes = utf8[utf8.startIndex..<mark]
            let queryBytes = utf8[utf8.index(after: mark)...]
            guard !queryBytes.contains(UInt8(ascii: "#")) else { return .failure(.fragment) }
            guard queryBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .failure(queryBytes.contains(where: { $0 >= 0x80 }) ? .nonASCII : .controlCharacter)
            }
            query = String(decoding: queryBytes, as: UTF8.self)
        }
        if pathBytes.isEmpty {
            // absolute-form with an empty path: "http://host" means "/".
            return .success(RequestTarget(path: "/", query: query, authority: authority))
        }

        if shortcut && Self.isAlreadyNormal(pathBytes, mergeSlashes: mergeSlashes) {
            // Most paths: the steps below would give back the same bytes.
            return .success(RequestTarget(path: String(decoding: pathBytes, as: UTF8.self), query: query, authority: authority))
        }

        // Steps 2 and 3: decode into a fresh byte array, checking every byte.
        var decoded: [UInt8] = []
        decoded.reserveCapacity(pathBytes.count)
        var index = pathBytes.startIndex
        while index != pathBytes.endIndex {
            let byte = pathBytes[index]
            switch byte {
            case UInt8(ascii: "%"):
                let first = pathBytes.index(after: index)
                guard first != pathBytes.endIndex else { return .failure(.badPercentEncoding) }
                let second = pathBytes.index(after: first)
                guard second != pathBytes.endIndex, let high = hexValue(pathBytes[first]),
                    let low = hexValue(pathBytes[second])
                else { return .failure(.badPercentEncoding) }
                let value = high << 4 | low
                switch value {
                case 0x2F: return .failure(.encodedSlash)
                case 0x5C: return .failure(.encodedBackslash)
                case 0x00: return .failure(.nulByte)
                case 0x01...0x1F, 0x7F: return .failure(.controlCharacter)
                default: break
                }
                if isUnreserved(value) {
                    decoded.append(value)
                } else {
                    decoded.append(UInt8(ascii: "%"))
                    decoded.append(upperHex(high))
                    decoded.append(upperHex(low))
                }
                index = pathBytes.index(after: second)
                continue
            case UInt8(ascii: "\\"):
                return .failure(.backslash)
            case 0x00:
                return .failure(.nulByte)
            case 0x01...0x20, 0x7F:
                return .failure(.controlCharacter)
            case 0x80...0xFF:
                return .failure(.nonASCII)
            case UInt8(ascii: "#"):
                return .failure(.fragment)
            default:
                decoded.append(byte)
            }
            index = pathBytes.index(after: index)
        }

        // Step 4: remove dot-segments (RFC 3986 §5.2.4), refusing to climb above the root.
        // The path is split into its segments after the leading "/".
        var output: [ArraySlice<UInt8>] = []
        let segments = decoded.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var trailingSlash = false
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            // `..;x` is `..` to upstreams that strip path parameters (Tomcat, Jetty, Spring), so
            // `/public/..;/admin` would reach what `/admin` guards: refused, like climbing out.
            if let semicolon = segment.firstIndex(of: UInt8(ascii: ";")),
                segment[..<semicolon].allSatisfy({ $0 == UInt8(ascii: ".") }), (1...2).contains(semicolon - segment.startIndex)
            {
                return .failure(.dotSegmentParameter)
            }
            if segment.elementsEqual([UInt8(ascii: ".")]) {
                if isLast { trailingSlash = true }
                continue
            }
            if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                guard output.popLast() != nil else { return .failure(.climbsAboveRoot) }
                if isLast { trailingSlash = true }
                continue
            }
            output.append(segment)
        }
        var path: [UInt8] = []
        path.reserveCapacity(decoded.count)
        for (position, segment) in output.enumerated() {
            // Step 5: merging slashes drops every empty segment but a trailing one.
            if mergeSlashes && segment.isEmpty {
                if position == output.count - 1 && path.last != UInt8(ascii: "/") { path.append(UInt8(ascii: "/")) }
                continue
            }
            path.append(UInt8(ascii: "/"))
            path.append(contentsOf: segment)
        }
        if (trailingSlash || path.isEmpty) && path.last != UInt8(ascii: "/") {
            path.append(UInt8(ascii: "/"))
        }
        return .success(RequestTarget(path: String(decoding: path, as: UTF8.self), query: query, authority: authority))
    }

    /// Whether the steps of ``normalize(_:mergeSlashes:)`` would leave a path as it is: it starts
    /// with "/", has nothing to decode or refuse, no dot-segment, no `;` (left to the full steps,
    /// which look for `..;`), and (when slashes merge) no empty segment but a trailing one.
    private static func isAlreadyNormal(_ path: Substring.UTF8View.SubSequence, mergeSlashes: Bool) -> Bool {
        guard path.first == UInt8(ascii: "/") else { return false }
        var length = 0
        var dots = 0
        for byte in path.dropFirst() {
            switch byte {
            case UInt8(ascii: "/"):
                // A segment ends that is not the last one.
                if length == dots && length <= 2 && (length > 0 || mergeSlashes) { return false }
                length = 0
                dots = 0
            case UInt8(ascii: "."):
                length += 1
                dots += 1
            case UInt8(ascii: "%"), UInt8(ascii: "\\"), UInt8(ascii: "#"), UInt8(ascii: ";"), 0x00...0x20, 0x7F...0xFF:
                return false
            default:
                length += 1
            }
        }
        return !(length > 0 && length == dots && length <= 2)
    }

    private static func dropScheme(_ bytes: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence? {
        for scheme in ["http://", "https://"] {
            let prefix = bytes.prefix(scheme.utf8.count)
            if prefix.count == scheme.utf8.count,
                zip(prefix, scheme.utf8).allSatisfy({ lowerASCII($0) == $1 })
            {
                return bytes.dropFirst(scheme.utf8.count)
            }
        }
        return nil
    }
}

@inline(__always)
private func lowerASCII(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
}

@inline(__always)
private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

@inline(__always)
private func upperHex(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
}

/// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~"
@inline(__always)
private func isUnreserved(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}
