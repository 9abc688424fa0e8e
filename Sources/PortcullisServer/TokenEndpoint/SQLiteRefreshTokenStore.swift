import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif
import PortcullisCore

/// A store that cannot be opened, said in one line: what, where, why, and as which user.
struct RefreshStoreError: Error, CustomStringConvertible {
    let description: String

    init(_ store: String, _ problem: String) {
        self.description = "token_endpoint.store \(store): \(problem) (running as uid \(getuid()))"
    }
}

/// Refresh tokens in SQLite through GRDB: WAL, and `synchronous = FULL` so a token is on disk
/// before the answer that carries it is sent. GRDB runs each transaction on its own writer
/// queue, never on an event loop.
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
        for created in missing.reversed() where mkdir(created, 0o700) != 0 && errno != EEXIST {
            throw RefreshStoreError(store, "cannot create the folder \(created): \(String(cString: strerror(errno)))")
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

    func issue(digest: [UInt8], _ record: RefreshRecord) async throws {
        try await self.queue.write { db in try Self.insert(db, digest, record) }
    }

    private static func insert(_ db: Database, _ digest: [UInt8], _ record: RefreshRecord) throws {
        try db.execute(
            sql: "INSERT INTO refresh_tokens (digest, family, subject, scopes, client_id, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, 0)",
            arguments: [Data(digest), record.family, record.subject, record.scopes.joined(separator: " "), record.clientID, record.expiresAt])
    }

    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double,
        decide: @escaping @Sendable (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) async throws -> RefreshRedemption {
        try await self.queue.write { db -> RefreshRedemption in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM refresh_tokens WHERE digest = ?", arguments: [Data(digest)])
            else { return .unknown }
            let record = RefreshRecord(
                family: row["family"], subject: row["subject"],
                scopes: (row["scopes"] as String).split(separator: " ").map(String.init), clientID: row["client_id"],
                expiresAt: row["expires_at"])
            switch RefreshTokenState(rawValue: row["state"]) {
            case .retired?:
                try db.execute(sql: "UPDATE refresh_tokens SET state = 2 WHERE family = ? AND state = 0", arguments: [record.family])
                return .reused(subject: record.subject)
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

    func revokeFamily(digest: [UInt8], clientID: String?) async throws -> Bool {
        try await self.queue.write { db -> Bool in
            guard let row = try Row.fetchOne(db, sql: "SELECT family, client_id FROM refresh_tokens WHERE digest = ?", arguments: [Data(digest)]),
                (row["client_id"] as String?) == clientID
            else { return false }
            try db.execute(sql: "UPDATE refresh_tokens SET state = 2 WHERE family = ?", arguments: [row["family"] as String])
            return true
        }
    }
}
