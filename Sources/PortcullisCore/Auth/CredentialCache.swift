import PortcullisCrypto
import Synchronization

/// Passwords and API keys that passed an Argon2 check recently, so a Basic or API-key route
/// does not pay 64 MiB and tens of milliseconds on every request.
///
/// Entries are keyed by an HMAC-SHA-256 of the credentials under a random key made for this
/// cache alone: neither the password nor an unsalted digest of it is ever held. Entries live
/// for ``lifetime`` seconds; the cache belongs to one policy, so a reload empties it.
package final class CredentialCache: Sendable {
    package static let lifetime: Double = 300

    package struct Key: Hashable, Sendable {
        let digest: [UInt8]
    }

    package enum Subject: Sendable, Hashable {
        case user(String)
        case apiKey(Int)
    }

    private struct State {
        var entries: [Key: (subject: Subject, expires: Double)] = [:]
        var order: [Key] = []
    }

    private let secret = SecureRandom.bytes(32)
    private let capacity: Int
    private let state = Mutex(State())

    package init(capacity: Int = 4096) { self.capacity = capacity }

    package func key(_ kind: String, _ parts: [UInt8]...) -> Key {
        var message = Array(kind.utf8)
        for part in parts {
            message.append(0)
            message.append(contentsOf: part)
        }
        let digest = self.secret.withUnsafeBytes { key in
            message.withUnsafeBytes { DigestAlgorithm.sha256.hmac(key: key, message: $0) }
        }
        return Key(digest: digest)
    }

    package func lookup(_ key: Key, now: Double) -> Subject? {
        self.state.withLock { state in
            guard let entry = state.entries[key], entry.expires >= now else { return nil }
            return entry.subject
        }
    }

    package func insert(_ key: Key, _ subject: Subject, now: Double) {
        self.state.withLock { state in
            if state.entries.updateValue((subject, now + Self.lifetime), forKey: key) == nil {
                state.order.append(key)
                if state.order.count > self.capacity {
                    state.entries.removeValue(forKey: state.order.removeFirst())
                }
            }
        }
    }
}

/// A password or key check the decision needs before it can answer: the server runs it on its
/// hashing pool (the CLI in place), records the verdict, and decides again.
package struct CredentialCheck: Sendable {
    /// PHC strings to try in order; the first that matches wins.
    package var candidates: [String]
    package var secret: [UInt8]
    package var cacheKey: CredentialCache.Key
    /// What is being guessed, for the login-failure metrics.
    package var kind: Kind

    package enum Kind: Sendable { case password, apiKey }

    package init(candidates: [String], secret: [UInt8], cacheKey: CredentialCache.Key, kind: Kind = .password) {
        self.candidates = candidates
        self.secret = secret
        self.cacheKey = cacheKey
        self.kind = kind
    }
}

/// The outcome of a ``CredentialCheck``: which candidate matched, if any.
package struct CredentialVerdict: Sendable {
    package var cacheKey: CredentialCache.Key
    package var matched: Int?
    /// The login throttle held the check back: no hash ran, and the client may try again in
    /// this many seconds.
    package var retryAfter: Int?

    package init(cacheKey: CredentialCache.Key, matched: Int?) {
        self.cacheKey = cacheKey
        self.matched = matched
    }

    /// The verdict of a check the login throttle refused to run.
    package static func throttled(_ check: CredentialCheck, retryAfter: Int) -> CredentialVerdict {
        var verdict = CredentialVerdict(cacheKey: check.cacheKey, matched: nil)
        verdict.retryAfter = retryAfter
        return verdict
    }
}

extension CredentialCheck {
    /// Runs the check here and now: only off the event loops (the CLI, or the hashing pool).
    package func run() -> CredentialVerdict {
        for (index, candidate) in self.candidates.enumerated() where Argon2.verify(self.secret, encoded: candidate) {
            return CredentialVerdict(cacheKey: self.cacheKey, matched: index)
        }
        return CredentialVerdict(cacheKey: self.cacheKey, matched: nil)
    }
}
