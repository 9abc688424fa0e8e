package import PortcullisCrypto
import Synchronization

/// The keys an issuer publishes at its `jwks_url`: empty until the first fetch succeeds, then
/// replaced whole by each good fetch. A failed fetch changes nothing, so the last good set stays.
///
/// The server fetches; this type only holds the result and the rate limit on fetches that an
/// unknown `kid` asks for (at most one per ``onDemandInterval`` per issuer, so a burst of
/// tokens with made-up kids never becomes a burst of fetches).
package final class RemoteKeySet: Sendable {
    package static let onDemandInterval: Double = 30

    package let issuer: String
    package let url: String
    package let refresh: Milliseconds

    private struct State {
        var keys: [IssuerKey] = []
        var loaded = false
        var lastOnDemand = -Double.infinity
        var fetches = 0
        var document: [UInt8]?
    }

    private let state = Mutex(State())
    private let onChange: @Sendable () -> Void

    init(issuer: String, url: String, refresh: Milliseconds, onChange: @escaping @Sendable () -> Void) {
        self.issuer = issuer
        self.url = url
        self.refresh = refresh
        self.onChange = onChange
    }

    package var keys: [IssuerKey] { self.state.withLock { $0.keys } }

    /// Whether a fetch has ever succeeded.
    package var isLoaded: Bool { self.state.withLock { $0.loaded } }

    /// The URL as logs and traces show it: without user information or query, which may hold
    /// credentials (`https://user:secret@idp/jwks?token=…` → `https://***@idp/jwks?…`).
    package var displayURL: String { Self.redacted(self.url) }

    package static func redacted(_ url: String) -> String {
        var text = Substring(url)
        var prefix = ""
        if let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") {
            let rest = text.index(colon, offsetBy: 3)
            prefix = String(text[..<rest])
            text = text[rest...]
        }
        let authorityEnd = text.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? text.endIndex
        if let at = text[..<authorityEnd].lastIndex(of: "@") {
            prefix += "***@"
            text = text[text.index(after: at)...]
        }
        if let query = text.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            return prefix + text[..<query] + String(text[query]) + "…"
        }
        return prefix + text
    }

    /// Parses a fetched JWKS document and, if it is good, makes it the current set. Keys the
    /// gateway cannot use are left out (RFC 7517 §5); the returned list says which and why.
    @discardableResult
    package func install(_ document: [UInt8]) throws(JWK.ParseError) -> [String] {
        let (parsed, skipped) = try JWK.parsePublishedSet(document)
        let source = "jwks_url \(self.displayURL)"
        let keys = parsed.map { IssuerKey(kid: $0.kid, algorithm: $0.algorithm, key: $0.key, source: source) }
        self.state.withLock {
            $0.keys = keys
            $0.loaded = true
            $0.fetches += 1
            $0.document = document
        }
        // Tokens verified with a key that is no longer published must be checked again.
        self.onChange()
        return skipped
    }

    /// The last good document, so a reloaded configuration can start with the same keys.
    package var lastDocument: [UInt8]? { self.state.withLock { $0.document } }

    /// Claims the right to one fetch for an unknown `kid`; `false` while rate-limited.
    package func claimOnDemandFetch(now: Double) -> Bool {
        self.state.withLock { state in
            guard now - state.lastOnDemand >= Self.onDemandInterval else { return false }
            state.lastOnDemand = now
            return true
        }
    }
}
