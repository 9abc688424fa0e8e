/// What the `Authorization` header holds, read without interpreting the credentials yet.
package enum PresentedCredentials: Sendable, Equatable {
    case none
    case bearer(Substring)
    case basic(Substring)
    /// Another scheme (`Digest …`): not credentials any route of ours accepts.
    case otherScheme
    /// Malformed: a reason for `error_description` (two headers, no token, bad characters).
    case malformed(String)

    /// Whether a Bearer token is a b64token (RFC 6750 §2.1):
    /// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    package static func isToken68(_ token: Substring) -> Bool {
        token.utf8.withContiguousStorageIfAvailable(Self.isToken68) ?? Self.isToken68(token.utf8)
    }

    /// The malformed reason of a Bearer token that is no b64token.
    package static let invalidTokenCharacters = "The Bearer token has invalid characters"

    private static func isToken68<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        var index = bytes.startIndex
        while index != bytes.endIndex, Self.isToken68Character(bytes[index]) { bytes.formIndex(after: &index) }
        while index != bytes.endIndex, bytes[index] == UInt8(ascii: "=") { bytes.formIndex(after: &index) }
        return index == bytes.endIndex
    }

    /// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, as two 64-bit sets (bytes 0–63 and
    /// 64–127): one shift and one test a byte, for tokens of hundreds of bytes.
    @inline(__always)
    private static func isToken68Character(_ byte: UInt8) -> Bool {
        let low: UInt64 = 0x3ffe80000000000
        let high: UInt64 = 0x47fffffe87fffffe
        if byte < 64 { return (low >> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (high >> UInt64(byte - 64)) & 1 == 1 }
        return false
    }

    /// Reads the client's `Authorization` headers. The scheme is matched case-insensitively
    /// (RFC 9110 §11.1); a Bearer token must be a b64token (RFC 6750 §2.1).
    ///
    /// Reads one header value byte by byte: only ASCII space and tab separate or surround the
    /// parts, so the byte positions are also positions in the string.
    /// - Parameter checkingToken: `false` leaves the b64token check of a Bearer token to the
    ///   caller (``isToken68(_:)``), which can skip it for a token verified before.
    package static func read(_ values: [String], checkingToken: Bool = true) -> PresentedCredentials {
        guard let value = values.first else { return .none }
        if values.count > 1 { return .malformed("More than one Authorization header") }
        let bytes = value.utf8
        let space = UInt8(ascii: " ")
        let tab = UInt8(ascii: "\t")
        var schemeStart = bytes.startIndex
        while schemeStart != bytes.endIndex, bytes[schemeStart] == space || bytes[schemeStart] == tab {
            bytes.formIndex(after: &schemeStart)
        }
        var schemeEnd = schemeStart
        while schemeEnd != bytes.endIndex, bytes[schemeEnd] != space { bytes.formIndex(after: &schemeEnd) }
        var restStart = schemeEnd
        while restStart != bytes.endIndex, bytes[restStart] == space { bytes.formIndex(after: &restStart) }
        var restEnd = bytes.endIndex
        while restEnd > restStart {
            let last = bytes[bytes.index(before: restEnd)]
            guard last == space || last == tab else { break }
            bytes.formIndex(before: &restEnd)
        }
        let scheme = bytes[schemeStart..<schemeEnd]
        let rest = value[restStart..<restEnd]
        if scheme.equalsIgnoringASCIICase("bearer".utf8) {
            if rest.isEmpty { return .malformed("The Bearer scheme needs a token") }
            return !checkingToken || Self.isToken68(rest) ? .bearer(rest) : .malformed(Self.invalidTokenCharacters)
        }
        if scheme.equalsIgnoringASCIICase("basic".utf8) { return .basic(rest) }
        // `Bearer<TAB>token`: meant as Bearer, but only a space separates scheme and credentials
        // (RFC 9110 §11.4), so it is malformed rather than some other scheme.
        if let tabIndex = scheme.firstIndex(of: tab), bytes[schemeStart..<tabIndex].equalsIgnoringASCIICase("bearer".utf8) {
            return .malformed("The Bearer scheme and its token must be separated by a space")
        }
        return .otherScheme
    }
}
