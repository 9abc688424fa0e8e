import Foundation
import GRDB
import PortcullisCore

/// Refresh tokens in SQLite through GRDB: WAL, and `synchronous = FULL` so a token is on disk
/// before the answer that carries it is sent. GRDB runs each transaction on its own writer
/// queue, never on an event loop.
final class SQLiteRefreshTokenStore: RefreshTokenStore {
    private let queue: DatabaseQueue

    init(path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        var configuration = Configuration()
        // Another process on the same file (a second gateway, a backup) holds the write lock for
        // moments: wait for it rather than fail the refresh with "database is locked".
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        self.queue = try DatabaseQueue(path: path, configuration: configuration)
        try self.queue.writeWithoutTransaction { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
        }
        try self.queue.write { db in
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
                try db.execute(sql: "UPDATE refresh_tokens SET state = 2 WHERE family = ?", arguments: [record.family])
                return .reused
            case .revoked?, nil:
                return .reused
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
