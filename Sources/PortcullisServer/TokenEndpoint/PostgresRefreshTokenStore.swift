import Logging
import NIOCore
import PortcullisCore
import PostgresNIO

/// Refresh tokens in PostgreSQL, shared by every replica on the database.
///
/// Rotation is decided by one statement: `UPDATE … SET state = retired WHERE digest = $1 AND
/// state = active RETURNING …`. PostgreSQL locks the row for the first of two concurrent
/// redemptions; the second waits, finds the token retired once the first commits (READ
/// COMMITTED re-checks the condition on the row's newest version), and is treated as reuse,
/// which revokes the family. Every write commits before the method returns.
final class PostgresRefreshTokenStore: RefreshTokenStore {
    private let database: PostgresDatabase
    private let logger: Logger

    init(database: PostgresDatabase, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    func issue(digest: [UInt8], _ record: RefreshRecord) async throws {
        try await self.database.run { connection in
            try await Self.insert(connection, digest, record, self.logger)
        }
    }

    private static func insert(_ connection: PostgresConnection, _ digest: [UInt8], _ record: RefreshRecord, _ logger: Logger)
        async throws
    {
        try await connection.perform(
            """
            INSERT INTO refresh_tokens (digest, family, subject, scopes, client_id, expires_at, state)
            VALUES (\(ByteBuffer(bytes: digest)), \(record.family), \(record.subject), \(record.scopes.joined(separator: " ")),
                    \(record.clientID), \(record.expiresAt), \(Int16(RefreshTokenState.active.rawValue)))
            """, logger: logger)
    }

    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double,
        decide: @escaping @Sendable (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) async throws -> RefreshRedemption {
        let key = ByteBuffer(bytes: digest)
        let logger = self.logger
        return try await self.database.run { connection in
            // An error anywhere closes the connection, and the server rolls the transaction back.
            try await connection.perform("BEGIN", logger: logger)
            let retired = try await connection.query(
                """
                UPDATE refresh_tokens SET state = \(Int16(RefreshTokenState.retired.rawValue))
                WHERE digest = \(key) AND state = \(Int16(RefreshTokenState.active.rawValue))
                RETURNING family, subject, scopes, client_id, expires_at
                """, logger: logger)
            var won: RefreshRecord?
            for try await (family, subject, scopes, clientID, expiresAt) in retired.decode((String, String, String, String?, Double).self) {
                won = RefreshRecord(
                    family: family, subject: subject, scopes: scopes.split(separator: " ").map(String.init), clientID: clientID,
                    expiresAt: expiresAt)
            }
            guard let record = won else {
                let outcome = try await Self.notActive(connection, key, logger)
                try await connection.perform("COMMIT", logger: logger)
                return outcome
            }
            // Refused or expired: the token stays as it was.
            if record.expiresAt < now {
                try await connection.perform("ROLLBACK", logger: logger)
                return .expired
            }
            switch decide(record) {
            case .failure(let error):
                try await connection.perform("ROLLBACK", logger: logger)
                return .refused(error)
            case .success(let replacement):
                try await Self.insert(connection, replacementDigest, replacement, logger)
                try await connection.perform("COMMIT", logger: logger)
                return .rotated(old: record, replacement: replacement)
            }
        }
    }

    /// The token was not active when this redemption came to it: unknown, or presented again
    /// (perhaps at the same moment as the redemption that won), which revokes its family.
    private static func notActive(_ connection: PostgresConnection, _ key: ByteBuffer, _ logger: Logger) async throws
        -> RefreshRedemption
    {
        var found: (family: String, state: Int16, subject: String)?
        for try await row in try await connection.query(
            "SELECT family, state, subject FROM refresh_tokens WHERE digest = \(key)", logger: logger
        ).decode((String, Int16, String).self) {
            found = row
        }
        guard let found else { return .unknown }
        switch RefreshTokenState(rawValue: Int(found.state)) {
        case .retired?:
            try await Self.revoke(family: found.family, connection, logger)
            return .reused(subject: found.subject)
        case .revoked?, nil:
            return .revoked
        case .active?:
            // Only a row inserted after the UPDATE's snapshot: not a token anyone could present yet.
            return .unknown
        }
    }

    func revokeFamily(digest: [UInt8], clientID: String?) async throws -> Bool {
        let key = ByteBuffer(bytes: digest)
        let logger = self.logger
        return try await self.database.run { connection in
            var family: String?
            for try await name in try await connection.query(
                "SELECT family FROM refresh_tokens WHERE digest = \(key) AND client_id IS NOT DISTINCT FROM \(clientID)",
                logger: logger
            ).decode(String.self) {
                family = name
            }
            guard let family else { return false }
            try await Self.revoke(family: family, connection, logger)
            return true
        }
    }

    /// Revokes every token of `family`, including one a concurrent rotation is adding: an
    /// UPDATE that waited for that rotation's row lock does not see the row it inserted (the
    /// statement's snapshot is older), so the statement runs again, with a new snapshot,
    /// until it changes nothing. A revoked family gains no rows, so this ends.
    private static func revoke(family: String, _ connection: PostgresConnection, _ logger: Logger) async throws {
        for _ in 0..<8 {
            var changed = 0
            for try await _ in try await connection.query(
                """
                UPDATE refresh_tokens SET state = \(Int16(RefreshTokenState.revoked.rawValue))
                WHERE family = \(family) AND state = \(Int16(RefreshTokenState.active.rawValue))
                RETURNING 1
                """, logger: logger)
            {
                changed += 1
            }
            if changed == 0 { return }
        }
    }
}
