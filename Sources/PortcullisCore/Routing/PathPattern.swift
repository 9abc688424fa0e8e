/// A segment-based path pattern (contract §3).
///
/// A path `/a/b/` is the segments `a`, `b`, `` (the empty one is the trailing slash, which is
/// significant). `*` and `{name}` match exactly one non-empty segment; `**`, only as the last
/// segment, matches zero or more segments, so `/a/**` matches `/a`, `/a/` and `/a/b/c`.
package struct PathPattern: Hashable, Sendable, CustomStringConvertible {
    package enum Segment: Hashable, Sendable {
        case literal(String)
        case any
        case named(String)
        case rest
    }

    package let segments: [Segment]
    package let text: String

    package enum ParseError: Error, Equatable {
        case mustStartWithSlash
        case restNotLast
        case badName(String)
        case dotSegment
        case emptySegment
        case badCharacter(Character)
        /// A percent-encoding every request path is refused for (`%2F`, `%5C`, `%00`, a control
        /// character) or one that is malformed, with the reason.
        case refusedEscape(String)
    }

    /// A literal segment as a normalized request path would spell it: percent-encoded
    /// unreserved characters decoded, other escapes with upper-case hex (contract §3). Without
    /// this, `/a/%7e` could never match, since every request for it arrives as `/a/~`.
    private static func normalizedLiteral(_ part: Substring) throws(ParseError) -> String {
        // `;` too: a `..;` segment is refused in every request.
        guard part.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: ";") }) else { return String(part) }
        // Under a first segment, so that `%2E%2E` cannot climb above the root.
        switch RequestTarget.normalize("/x/" + part, mergeSlashes: false) {
        case .failure(let refusal):
            throw .refusedEscape(refusal.detail)
        case .success(let target):
            // `%2E` and `%2E%2E` decode to dot-segments, which normalization removes.
            guard target.path.hasPrefix("/x/") else { throw .dotSegment }
            let literal = target.path.dropFirst(3)
            guard !literal.isEmpty, !literal.contains("/") else { throw .dotSegment }
            return String(literal)
        }
    }

    /// Parses a pattern. With `mergeSlashes`, an empty segment inside the pattern could never
    /// match a normalized path, so it is refused.
    package init(_ text: String, mergeSlashes: Bool) throws(ParseError) {
        guard text.hasPrefix("/") else { throw .mustStartWithSlash }
        let parts = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var segments: [Segment] = []
        for (index, part) in parts.enumerated() {
            let isLast = index == parts.count - 1
            if part == "**" {
                guard isLast else { throw .restNotLast }
                segments.append(.rest)
            } else if part == "*" {
                segments.append(.any)
            } else if part.hasPrefix("{") && part.hasSuffix("}") && part.count >= 2 {
                let name = part.dropFirst().dropLast()
                guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                    throw .badName(String(part))
                }
                segments.append(.named(String(name)))
            } else {
                if part == "." || part == ".." { throw .dotSegment }
                if part.isEmpty && !isLast && mergeSlashes { throw .emptySegment }
                for character in part {
                    if character == "\\" || character == "?" || character == "#" || !character.isASCII
                        || character.asciiValue.map({ $0 < 0x21 || $0 == 0x7F }) == true
                    {
                        throw .badCharacter(character)
                    }
                }
                segments.append(.literal(try Self.normalizedLiteral(part)))
            }
        }
        self.segments = segments
        self.text = text
    }

    package var description: String { self.text }

    /// Whether the normalized `path` (starting with `/`) matches.
    package func matches(_ path: Substring) -> Bool {
        var rest = path.utf8.dropFirst()  // the leading "/"
        var index = 0
        while true {
            if index == self.segments.count {
                return false
            }
            let segment = self.segments[index]
            if case .rest = segment { return true }
            // Take the next segment of the path.
            let end = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
            let current = rest[rest.startIndex..<end]
            switch segment {
            case .literal(let literal):
                guard current.elementsEqual(literal.utf8) else { return false }
            case .any, .named:
                guard !current.isEmpty else { return false }
            case .rest:
                return true
            }
            index += 1
            if end == rest.endIndex {
                // The path has no more segments: only a trailing `**` may follow.
                if index == self.segments.count { return true }
                if index == self.segments.count - 1, case .rest = self.segments[index] { return true }
                return false
            }
            rest = rest[rest.index(after: end)...]
        }
    }

    /// Whether every path this pattern matches is also matched by `other`'s complement, i.e.
    /// whether `self` covers `other` entirely. Used to find shadowed routes.
    package func covers(_ other: PathPattern) -> Bool {
        Self.covers(self.segments[...], other.segments[...])
    }

    /// Whether some path matches both patterns.
    package func overlaps(_ other: PathPattern) -> Bool {
        Self.overlaps(self.segments[...], other.segments[...])
    }

    private static func overlaps(_ a: ArraySlice<Segment>, _ b: ArraySlice<Segment>) -> Bool {
        guard let first = a.first else {
            if let other = b.first, case .rest = other { return true }
            return b.isEmpty
        }
        if case .rest = first { return true }
        guard let other = b.first else { return false }
        if case .rest = other { return true }
        switch (first, other) {
        case (.literal(let x), .literal(let y)):
            guard x == y else { return false }
        case (.literal(let x), _), (_, .literal(let x)):
            guard !x.isEmpty else { return false }
        default:
            break
        }
        return overlaps(a.dropFirst(), b.dropFirst())
    }

    private static func covers(_ a: ArraySlice<Segment>, _ b: ArraySlice<Segment>) -> Bool {
        guard let first = a.first else { return b.isEmpty }
        if case .rest = first { return true }
        guard let other = b.first else {
            return false
        }
        switch (first, other) {
        case (_, .rest):
            return false
        case (.literal(let x), .literal(let y)):
            guard x == y else { return false }
        case (.any, .literal(let y)), (.named, .literal(let y)):
            guard !y.isEmpty else { return false }
        case (.any, .any), (.any, .named), (.named, .any), (.named, .named):
            break
        case (.literal, _):
            return false
        case (.rest, _):
            return true
        }
        return covers(a.dropFirst(), b.dropFirst())
    }
}

/// The methods a route accepts. Listing GET also admits HEAD.
package struct MethodSet: Hashable, Sendable, CustomStringConvertible {
    /// `nil` means every method.
    package let methods: Set<String>?

    package static let all = MethodSet(methods: nil)

    package init(methods: Set<String>?) {
        if var listed = methods, listed.contains("GET") {
            listed.insert("HEAD")
            self.methods = listed
        } else {
            self.methods = methods
        }
    }

    package func contains(_ method: String) -> Bool { self.methods?.contains(method) ?? true }

    package func isSubset(of other: MethodSet) -> Bool {
        guard let otherMethods = other.methods else { return true }
        guard let mine = self.methods else { return false }
        return mine.isSubset(of: otherMethods)
    }

    package var description: String { self.methods.map { $0.sorted().joined(separator: ", ") } ?? "*" }

    package static func isToken(_ method: String) -> Bool {
        !method.isEmpty && method.utf8.allSatisfy { byte in
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x5F
        }
    }
}

/// `api.example.com` or `*.example.com` (one or more labels before the suffix); compared
/// case-insensitively with the request's host without its port.
package struct HostPattern: Hashable, Sendable, CustomStringConvertible {
    package let text: String
    private let suffix: String?
    private let exact: String?

    package init?(_ text: String) {
        let lowered = text.lowercased()
        guard !lowered.isEmpty, !lowered.contains(":") || lowered.hasPrefix("["),
            lowered.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") })
        else { return nil }
        if lowered.hasPrefix("*.") {
            let rest = String(lowered.dropFirst(1))  // ".example.com"
            guard rest.count > 1, !rest.dropFirst().contains("*") else { return nil }
            self.suffix = rest
            self.exact = nil
        } else {
            guard !lowered.contains("*") else { return nil }
            self.suffix = nil
            self.exact = lowered
        }
        self.text = text
    }

    /// `host` must already be lower-cased and without port.
    package func matches(_ host: Substring) -> Bool {
        if let exact = self.exact { return host.utf8.elementsEqual(exact.utf8) }
        guard let suffix = self.suffix else { return false }
        return host.utf8.count > suffix.utf8.count && host.hasSuffix(suffix)
    }

    package func covers(_ other: HostPattern) -> Bool {
        if let exact = self.exact { return other.exact == exact }
        guard let suffix = self.suffix else { return false }
        if let otherExact = other.exact { return otherExact.count > suffix.count && otherExact.hasSuffix(suffix) }
        if let otherSuffix = other.suffix { return otherSuffix.hasSuffix(suffix) }
        return false
    }

    package var description: String { self.text }
}
