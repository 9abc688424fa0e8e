import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif
import PortcullisCore
import Synchronization

/// What is kept of a refresh token: never the token, only its SHA-256 digest.
struct RefreshRecord: Sendable {
    var family: String
    var subject: String
    var scopes: [String]
    var clientID: String?
    var expiresAt: Double
}

/// What presenting a refresh token led to.
enum RefreshRedemption: Sendable {
    /// The token was good: it is retired and `replacement` stands in its place.
    case rotated(old: RefreshRecord, replacement: RefreshRecord)
    /// The token had been used before: its whole family is now revoked (RFC 9700 §4.14.2).
    /// The retired token stays retired, so each replay of it is reported again.
    case reused(RefreshRecord)
    /// The token was revoked with its family before it was ever used: refused, and no reuse.
    case revoked
    case unknown
    case expired
    case refused(OAuthError)
}

/// Where refresh tokens live. Every method may block: call them off the event loops.
protocol RefreshTokenStore: Sendable {
    func issue(digest: [UInt8], _ record: RefreshRecord) throws
    /// In one transaction: looks the digest up and, if `decide` accepts the record, retires it and
    /// stores the replacement under `replacementDigest`. A retired digest revokes the family's
    /// active tokens.
    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double,
        decide: (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) throws -> RefreshRedemption
}

private enum TokenState: Int {
    case active = 0
    case retired = 1
    case revoked = 2
}

/// A store that cannot be opened, said in one line: what, where, why, and as which user.
struct RefreshStoreError: Error, CustomStringConvertible {
    let description: String

    init(_ store: String, _ problem: String) {
        self.description = "token_endpoint.store \(store): \(problem) (running as uid \(getuid()))"
    }
}

/// Refresh tokens in SQLite through GRDB: WAL, and `synchronous = FULL` so a token is on disk
/// before the answer that carries it is sent.
final class SQLiteRefreshTokenStore: RefreshTokenStore {
    private let queue: DatabaseQueue

    init(path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        try Self.prepareFolder(folder.isEmpty ? "." : folder, store: "sqlite:\(path)")
        do {
            self.queue = try Self.open(path)
        } catch let error as DatabaseError {
            throw RefreshStoreError("sqlite:\(path)", "cannot open the database: \(error.message ?? "\(error.resultCode)")")
        }
    }

    /// Creates the store's folder if need be and checks that SQLite can create files in it (the
    /// database, and its `-wal` and `-shm` files).
    private static func prepareFolder(_ folder: String, store: String) throws {
        var missing: [String] = []
        var existing = folder
        while !existing.isEmpty, existing != "/", access(existing, F_OK) != 0 {
            missing.append(existing)
            existing = (existing as NSString).deletingLastPathComponent
        }
        for created in missing.reversed() {
            if mkdir(created, 0o700) != 0 && errno != EEXIST {
                throw RefreshStoreError(store, "cannot create the folder \(created): \(String(cString: strerror(errno)))")
            }
        }
        if access(folder, W_OK | X_OK) != 0 {
            throw RefreshStoreError(store, "cannot write in the folder \(folder): \(String(cString: strerror(errno)))")
        }
    }

    private static func open(_ path: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        // Another process on the same file (a second gateway, a backup) holds the write lock for
        // moments: wait for it rather than fail the refresh with "database is locked".
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.writeWithoutTransaction { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
        }
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS refresh_tokens (
                        digest BLOB PRIMARY KEY NOT NULL,
                        family TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        scopes TEXT NOT NULL,
                        client_id TEXT,
                        expires_at REAL NOT NULL,
                        state INTEGER NOT NULL
                    );
                    CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
                    """)
        }
        return queue
    }

    func issue(digest: [UInt8], _ record: RefreshRecord) throws {
        try self.queue.write { db in try Self.insert(db, digest, record) }
    }

    private static func insert(_ db: Database, _ digest: [UInt8], _ record: RefreshRecord) throws {
        try db.execute(
            sql: "INSERT INTO refresh_tokens (digest, family, subject, scopes, client_id, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, 0)",
            arguments: [Data(digest), record.family, record.subject, record.scopes.joined(separator: " "), record.clientID, record.expiresAt])
    }

    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double, decide: (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) throws -> RefreshRedemption {
        try self.queue.write { db -> RefreshRedemption in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM refresh_tokens WHERE digest = ?", arguments: [Data(digest)])
            else { return .unknown }
            let record = RefreshRecord(
                family: row["family"], subject: row["subject"],
                scopes: (row["scopes"] as String).split(separator: " ").map(String.init), clientID: row["client_id"],
                expiresAt: row["expires_at"])
            switch TokenState(rawValue: row["state"]) {
            case .retired?:
                try db.execute(sql: "UPDATE refresh_tokens SET state = 2 WHERE family = ? AND state = 0", arguments: [record.family])
                return .reused(record)
            case .revoked?, nil:
                return .revoked
            case .active?:
                break
            }
            if record.expiresAt < now { return .expired }
            switch decide(record) {
            case .failure(let error):
                return .refused(error)
            case .success(let replacement):
                try db.execute(sql: "UPDATE refresh_tokens SET state = 1 WHERE digest = ?", arguments: [Data(digest)])
                try Self.insert(db, replacementDigest, replacement)
                return .rotated(old: record, replacement: replacement)
            }
        }
    }
}

/// Refresh tokens in memory (`store: "memory:"`), for tests and single-instance experiments.
final class MemoryRefreshTokenStore: RefreshTokenStore {
    private struct Entry {
        var record: RefreshRecord
        var state: TokenState
    }

    private let entries = Mutex<[[UInt8]: Entry]>([:])

    func issue(digest: [UInt8], _ record: RefreshRecord) throws {
        self.entries.withLock { $0[digest] = Entry(record: record, state: .active) }
    }

    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double, decide: (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) throws -> RefreshRedemption {
        self.entries.withLock { entries in
            guard let entry = entries[digest] else { return .unknown }
            switch entry.state {
            case .retired:
                for (key, value) in entries where value.record.family == entry.record.family && value.state == .active {
                    entries[key]?.state = .revoked
                }
                return .reused(entry.record)
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
}
