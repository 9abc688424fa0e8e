import PortcullisCore
import Synchronization

/// Refresh tokens in memory (`store: "memory:"`), for tests and single-instance experiments.
final class MemoryRefreshTokenStore: RefreshTokenStore {
    private struct Entry {
        var record: RefreshRecord
        var state: RefreshTokenState
    }

    private let entries = Mutex<[[UInt8]: Entry]>([:])

    func issue(digest: [UInt8], _ record: RefreshRecord) async throws {
        self.entries.withLock { $0[digest] = Entry(record: record, state: .active) }
    }

    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double,
        decide: @escaping @Sendable (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) async throws -> RefreshRedemption {
        self.entries.withLock { entries in
            guard let entry = entries[digest] else { return .unknown }
            switch entry.state {
            case .retired:
                Self.revoke(family: entry.record.family, in: &entries)
                return .reused(subject: entry.record.subject)
            case .revoked:
                return .revoked
            case .active:
                break
            }
            if entry.record.expiresAt < now { return .expired }
            switch decide(entry.record) {
            case .failure(let error):
                return .refused(error)
            case .success(let replacement):
                entries[digest]?.state = .retired
                entries[replacementDigest] = Entry(record: replacement, state: .active)
                return .rotated(old: entry.record, replacement: replacement)
            }
        }
    }

    func revokeFamily(digest: [UInt8], clientID: String?) async throws -> Bool {
        self.entries.withLock { entries in
            guard let entry = entries[digest], entry.record.clientID == clientID else { return false }
            Self.revoke(family: entry.record.family, in: &entries)
            return true
        }
    }

    private static func revoke(family: String, in entries: inout [[UInt8]: Entry]) {
        // Only the active tokens: a retired one stays retired, so each later replay of it counts
        // as the reuse it is, and the revoked successor counts as none.
        for (key, value) in entries where value.record.family == family && value.state == .active {
            entries[key]?.state = .revoked
        }
    }
}
