/// Value forms more than one section reads or checks: request paths and HTTP header names.
extension ConfigLoader {
    /// Whether a literal path is already what normalization makes of a request path, so that
    /// a normalized request can equal it.
    static func isNormalPath(_ path: String, mergeSlashes: Bool) -> Bool {
        guard case .success(let target) = RequestTarget.normalize(path, mergeSlashes: mergeSlashes, shortcut: false) else { return false }
        return target.query == nil && target.path == path
    }

    /// How a request for `path` is normalized, or why it is refused, for messages.
    static func normalForm(_ path: String, mergeSlashes: Bool) -> String {
        switch RequestTarget.normalize(path, mergeSlashes: mergeSlashes, shortcut: false) {
        case .success(let target) where target.query != nil: return "a query is not part of a path"
        case .success(let target): return "a request for it arrives as '\(target.path)'"
        case .failure(let refusal): return "every request for it is refused: \(refusal.detail)"
        }
    }

    static func patternMessage(_ error: PathPattern.ParseError) -> String {
        switch error {
        case .mustStartWithSlash: return "it must start with '/'"
        case .restNotLast: return "'**' may only be the last segment"
        case .badName(let name): return "'\(name)' is not a valid {name} segment"
        case .dotSegment: return "'.' and '..' segments can never match a normalized path"
        case .emptySegment: return "an empty segment ('//') can never match while merge_slashes is on"
        case .badCharacter(let character): return "the character '\(character)' cannot appear in a normalized path"
        case .refusedEscape(let reason): return "it can never match: every request path with it is refused (\(reason))"
        }
    }
}

/// HTTP header-name syntax (RFC 9110 §5.1 token).
package enum HeaderName {
    package static func isToken(_ text: String) -> Bool {
        guard !text.isEmpty else { return false }
        return text.utf8.withContiguousStorageIfAvailable { $0.allSatisfy(Self.isTokenByte) }
            ?? text.utf8.allSatisfy(Self.isTokenByte)
    }

    /// A token character (RFC 9110 §5.6.2): a letter, a digit or one of ``!#$%&'*+-.^_`|~``.
    /// Every answer of the decision service checks its field names with it, so it is a bit
    /// table: bytes 0-63 in the first word, 64-127 in the second.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if byte < 64 { return 0x03FF_6CFA_0000_0000 & (1 as UInt64) << UInt64(byte) != 0 }
        if byte < 128 { return 0x57FF_FFFF_C7FF_FFFE & (1 as UInt64) << UInt64(byte - 64) != 0 }
        return false
    }
}
