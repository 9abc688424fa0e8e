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

    /// Parses a fetched JWKS document and, if it is good, makes it the current set.
    package func install(_ document: [UInt8]) throws(JWK.ParseError) {
        let parsed = try JWK.parseSet(document, allowSecrets: false)
        let keys = parsed.map { IssuerKey(kid: $0.kid, algorithm: $0.algorithm, key: $0.key, source: "jwks_url \(self.url)") }
        self.state.withLock {
            $0.keys = keys
            $0.loaded = true
            $0.fetches += 1
            $0.document = document
        }
        // Tokens verified with a key that is no longer published must be checked again.
        self.onChange()
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
