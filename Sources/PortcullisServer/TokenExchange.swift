import NIOHTTP1
import PortcullisCore

/// A token endpoint request being read.
struct TokenExchange {
    var head: HTTPRequestHead
    var requestID: String
    var policy: Policy
    var endpoint: TokenEndpointConfig
    /// `POST {path}/revoke` (RFC 7009) rather than a token request.
    var revocation = false
    var body: [UInt8] = []
    var tooLarge = false

    /// Whether `answer` asks for the revocation endpoint (`true`) or the token endpoint
    /// (`false`) to read the body; `nil` for every other answer.
    static func revocation(_ answer: Decision) -> Bool? {
        switch answer {
        case .serve(.tokenEndpoint): return false
        case .serve(.tokenRevocation): return true
        default: return nil
        }
    }

    /// Token requests are small forms; anything larger is refused.
    static let maximumRequestBytes = 64 << 10

    /// Whether `uri` could normalize to `path` (or, with `wellKnown`, to a `/.well-known/` path):
    /// only when it spells the last segment of one, or has a percent-encoding that could.
    /// Spares the other requests a second normalization.
    static func mayName(_ uri: String, _ path: String, _ wellKnown: Bool) -> Bool {
        let utf8 = uri.utf8[...]
        if utf8.contains(UInt8(ascii: "%")) { return true }
        let lastSegment = path.utf8.split(separator: UInt8(ascii: "/")).last ?? path.utf8[...]
        return Self.contains(utf8, lastSegment) || (wellKnown && Self.contains(utf8, "well-known".utf8[...]))
    }

    private static func contains(_ haystack: Substring.UTF8View, _ needle: Substring.UTF8View) -> Bool {
        guard let first = needle.first else { return true }
        var rest = haystack
        while let start = rest.firstIndex(of: first) {
            if rest[start...].starts(with: needle) { return true }
            rest = rest[rest.index(after: start)...]
        }
        return false
    }
}
