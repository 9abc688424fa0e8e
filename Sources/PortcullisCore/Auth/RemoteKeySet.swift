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
    /// The configured `jwks_url`, or, with discovery, the discovery document's URL.
    package let url: String
    package let refresh: Milliseconds
    /// `discovery: true`: `url` is the OpenID Connect discovery document, whose `jwks_uri`
    /// names the key set.
    package let discovery: Bool

    private struct State {
        var keys: [IssuerKey] = []
        var loaded = false
        var lastOnDemand = -Double.infinity
        var fetches = 0
        var document: [UInt8]?
        /// With discovery: the `jwks_uri` of the last good discovery document.
        var discoveredURL: String?
    }

    private let state = Mutex(State())
    private let onChange: @Sendable () -> Void

    package init(
        issuer: String, url: String, refresh: Milliseconds, discovery: Bool = false, onChange: @escaping @Sendable () -> Void
    ) {
        self.issuer = issuer
        self.url = url
        self.discovery = discovery
        self.refresh = refresh
        self.onChange = onChange
    }

    package var keys: [IssuerKey] { self.state.withLock { $0.keys } }

    /// Whether a fetch has ever succeeded.
    package var isLoaded: Bool { self.state.withLock { $0.loaded } }

    /// The URL as logs and traces show it: without user information or query, which may hold
    /// credentials (`https://user:secret@idp/jwks?token=…` → `https://***@idp/jwks?…`).
    package var displayURL: String { Self.redacted(self.keySetURL ?? self.url) }

    /// Where the keys are fetched from: the configured `jwks_url`, or the discovered `jwks_uri`
    /// (`nil` until a discovery document has been accepted).
    package var keySetURL: String? { self.discovery ? self.state.withLock { $0.discoveredURL } : self.url }

    /// Accepts an OpenID Connect discovery document (OpenID Connect Discovery 1.0 §4.3): its
    /// `issuer` must equal the configured one exactly, and its `jwks_uri` be an http(s) URL.
    /// Returns the key set's URL, or why the document was refused.
    package func acceptDiscovery(_ document: [UInt8]) -> Result<String, DiscoveryError> {
        guard let json = JSONValue.parse(document), case .object = json else { return .failure(.init(reason: "not a JSON object")) }
        guard let issuer = json["issuer"]?.string else { return .failure(.init(reason: "no issuer")) }
        guard issuer == self.issuer else {
            return .failure(.init(reason: "its issuer is not the configured one (OpenID Connect Discovery §4.3)"))
        }
        guard let uri = json["jwks_uri"]?.string,
            uri.lowercased().hasPrefix("https://") || uri.lowercased().hasPrefix("http://"),
            !uri.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F })
        else { return .failure(.init(reason: "no http(s) jwks_uri")) }
        self.state.withLock { $0.discoveredURL = uri }
        return .success(uri)
    }

    package struct DiscoveryError: Error, CustomStringConvertible {
        package var reason: String
        package var description: String { self.reason }
    }

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

    /// Starts a set of a reloaded configuration with what `previous` had fetched.
    package func inherit(from previous: RemoteKeySet) {
        guard previous.url == self.url, previous.discovery == self.discovery, let document = previous.lastDocument else { return }
        let discovered = previous.state.withLock { $0.discoveredURL }
        self.state.withLock { $0.discoveredURL = discovered }
        _ = try? self.install(document)
    }

    /// Claims the right to one fetch for an unknown `kid`; `false` while rate-limited.
    package func claimOnDemandFetch(now: Double) -> Bool {
        self.state.withLock { state in
            guard now - state.lastOnDemand >= Self.onDemandInterval else { return false }
            state.lastOnDemand = now
            return true
        }
    }
}
