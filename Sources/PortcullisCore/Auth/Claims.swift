package import PortcullisCrypto

/// A path into a token's claims: dot-separated member names (`realm_access.roles`,
/// `resource_access.api.roles`), where a member whose name holds a dot is a quoted segment
/// (`"https://example.com/roles"`, Auth0's namespaced claims).
package struct ClaimPath: Hashable, Sendable, CustomStringConvertible {
    package let segments: [String]
    package let description: String

    /// `nil` for an empty path, an empty segment or an unterminated quote.
    package init?(_ text: String) {
        var segments: [String] = []
        var current = ""
        var quoted = false
        var closedQuote = false
        var iterator = text.unicodeScalars.makeIterator()
        while let scalar = iterator.next() {
            if quoted {
                if scalar == "\"" {
                    quoted = false
                    closedQuote = true
                } else if scalar == "\\" {
                    guard let escaped = iterator.next() else { return nil }
                    current.unicodeScalars.append(escaped)
                } else {
                    current.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"":
                // A quote opens a segment only at its start.
                guard current.isEmpty, !closedQuote else { return nil }
                quoted = true
            case ".":
                guard !current.isEmpty || closedQuote else { return nil }
                segments.append(current)
                current = ""
                closedQuote = false
            default:
                guard !closedQuote else { return nil }
                current.unicodeScalars.append(scalar)
            }
        }
        guard !quoted, !current.isEmpty || closedQuote else { return nil }
        segments.append(current)
        self.segments = segments
        self.description = text
    }

    /// The value at this path, or `nil` when the path leads nowhere (an absent claim).
    package func lookup(_ claims: JSONValue) -> JSONValue? {
        var value = claims
        for segment in self.segments {
            guard let next = value[segment] else { return nil }
            value = next
        }
        return value
    }
}

/// One `claims:` condition of a route.
package struct ClaimCondition: Sendable {
    package enum Test: Sendable, Hashable {
        /// The claim equals this JSON value (a string, number or boolean).
        case equals(JSONValue)
        /// The claim equals one of these values.
        case oneOf([JSONValue])
        /// The claim is an array holding the value, or a space-delimited string with it as a word.
        case contains(JSONValue)
        /// `present: true` (the claim is there) or `present: false` (it is not).
        case present(Bool)
    }

    package var path: ClaimPath
    package var test: Test
    package var location: SourceLocation

    package init(path: ClaimPath, test: Test, location: SourceLocation) {
        self.path = path
        self.test = test
        self.location = location
    }

    /// Whether the condition holds for `claims`. An absent claim fails every test but
    /// `present: false`.
    package func holds(_ claims: JSONValue) -> Bool {
        guard let value = self.path.lookup(claims) else {
            if case .present(false) = self.test { return true }
            return false
        }
        switch self.test {
        case .present(let wanted): return wanted
        case .equals(let expected): return Self.same(value, expected)
        case .oneOf(let options): return options.contains { Self.same(value, $0) }
        case .contains(let needle):
            switch value {
            case .array(let items): return items.contains { Self.same($0, needle) }
            case .string(let text):
                guard let word = needle.string else { return false }
                return text.split(separator: " ").contains { $0 == word }
            default: return false
            }
        }
    }

    /// JSON equality: numbers by value (`1` equals `1.0`), everything else structurally.
    private static func same(_ a: JSONValue, _ b: JSONValue) -> Bool { a == b }

    /// The condition as written, for traces: `org.tenant in [acme, globex]`.
    package var summary: String {
        switch self.test {
        case .equals(let value): return "\(self.path) equals \(value.serialized)"
        case .oneOf(let values): return "\(self.path) in [\(values.map(\.serialized).joined(separator: ", "))]"
        case .contains(let value): return "\(self.path) contains \(value.serialized)"
        case .present(let wanted): return "\(self.path) present: \(wanted)"
        }
    }
}

/// Reading roles and scopes out of verified claims.
package enum ClaimReading {
    /// A list claim: an array of strings or a space-delimited string; `nil` for anything else.
    package static func stringList(_ value: JSONValue) -> [String]? {
        switch value {
        case .string(let text): return text.split(separator: " ").map(String.init)
        case .array(let items):
            var list: [String] = []
            list.reserveCapacity(items.count)
            for item in items {
                guard let text = item.string else { return nil }
                list.append(text)
            }
            return list
        default: return nil
        }
    }

    /// The text a claim travels upstream as, in a `claim_headers` header: a string as it is, a
    /// number or boolean as its JSON text, an array of strings joined with `,`. `nil` when it
    /// cannot travel undamaged: an object or `null`, an array holding anything but strings or a
    /// string with a `,`, or text with a control character or a line separator.
    package static func headerText(_ value: JSONValue) -> String? {
        let text: String
        switch value {
        case .string(let string): text = string
        case .number, .bool: text = value.serialized
        case .array(let items):
            var parts: [String] = []
            for item in items {
                guard let string = item.string, !string.contains(",") else { return nil }
                parts.append(string)
            }
            text = parts.joined(separator: ",")
        case .object, .null: return nil
        }
        guard text.utf8.count <= 4096 else { return nil }
        let clean = text.unicodeScalars.allSatisfy { scalar in
            let value = scalar.value
            return !(value < 0x20 || value == 0x7F || (0x80...0x9F).contains(value) || value == 0x2028 || value == 0x2029
                || value == 0x85)
        }
        return clean ? text : nil
    }
}
