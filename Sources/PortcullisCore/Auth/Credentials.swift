/// What the `Authorization` header holds, read without interpreting the credentials yet.
package enum PresentedCredentials: Sendable, Equatable {
    case none
    case bearer(Substring)
    case basic(Substring)
    /// Another scheme (`Digest …`): not credentials any route of ours accepts.
    case otherScheme
    /// Malformed: a reason for `error_description` (two headers, no token, bad characters).
    case malformed(String)

    /// Reads the client's `Authorization` headers. The scheme is matched case-insensitively
    /// (RFC 9110 §11.1); a Bearer token must be a b64token (RFC 6750 §2.1).
    /// RFC 6750 §2.1 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    private static func isToken68<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        var sawEquals = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                if sawEquals { return false }
            case UInt8(ascii: "="):
                sawEquals = true
            default:
                return false
            }
        }
        return true
    }

    package static func read(_ values: [String]) -> PresentedCredentials {
        guard let value = values.first else { return .none }
        if values.count > 1 { return .malformed("More than one Authorization header") }
        let trimmed = value.drop { $0 == " " || $0 == "\t" }
        let schemeEnd = trimmed.firstIndex(of: " ") ?? trimmed.endIndex
        let scheme = trimmed[..<schemeEnd]
        var rest = trimmed[schemeEnd...]
        while rest.first == " " { rest = rest.dropFirst() }
        while rest.last == " " || rest.last == "\t" { rest = rest.dropLast() }
        if scheme.lowercased() == "bearer" {
            if rest.isEmpty { return .malformed("The Bearer scheme needs a token") }
            let valid = rest.utf8.withContiguousStorageIfAvailable(Self.isToken68) ?? Self.isToken68(Array(rest.utf8))
            return valid ? .bearer(rest) : .malformed("The Bearer token has invalid characters")
        }
        if scheme.lowercased() == "basic" { return .basic(rest) }
        // `Bearer<TAB>token`: meant as Bearer, but only a space separates scheme and credentials
        // (RFC 9110 §11.4), so it is malformed rather than some other scheme.
        if let tab = scheme.firstIndex(of: "\t"), scheme[..<tab].lowercased() == "bearer" {
            return .malformed("The Bearer scheme and its token must be separated by a space")
        }
        return .otherScheme
    }
}
