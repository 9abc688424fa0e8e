import Logging
import PostgresNIO

/// The tables of a `postgresql://` store, and the version they carry in `schema_version`.
///
/// Version 1:
/// - `refresh_tokens`: one row per refresh token ever issued, keyed by the SHA-256 digest of
///   the token (never the token): its family, subject, scopes, client, expiry and state
///   (``RefreshTokenState``: 0 active, 1 retired, 2 revoked).
/// - `login_failures`: one row per failed login within the throttle's window: the client
///   address, when, and which gateway process saw it. Rows older than the window are deleted.
///
/// A later version adds its changes here, guarded by the version found; a gateway that finds a
/// version above its own refuses the database rather than write rows it does not understand.
enum PostgresSchema {
    static let version = 1

    /// The database was prepared by a newer gateway.
    struct TooNew: Error, CustomStringConvertible {
        var found: Int
        var description: String {
            "the store's schema is version \(self.found), newer than the version \(PostgresSchema.version) this gateway knows; run a gateway at least as new as the one that upgraded it"
        }
    }

    /// Any number that other applications of the database are unlikely to lock.
    private static let advisoryLock: Int64 = 0x706f_7274_6375_6c6c  // "portcull"

    private static let statements: [PostgresQuery] = [
        """
        CREATE TABLE IF NOT EXISTS refresh_tokens (
            digest bytea PRIMARY KEY,
            family text NOT NULL,
            subject text NOT NULL,
            scopes text NOT NULL,
            client_id text,
            expires_at double precision NOT NULL,
            state smallint NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family)",
        """
        CREATE TABLE IF NOT EXISTS login_failures (
            address text NOT NULL,
            failed_at double precision NOT NULL,
            replica text NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS login_failures_failed_at ON login_failures (failed_at)",
    ]

    /// Checks the version and creates what is missing, in one transaction under an advisory
    /// lock: replicas that start together do not race each other's `CREATE TABLE`. A database
    /// already at this version is only read, so a role without the right to create tables
    /// can use tables an administrator created.
    /// - Throws: ``TooNew`` for a newer schema, or what the database said.
    static func prepare(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.perform("BEGIN", logger: logger)
        try await connection.perform("SELECT pg_advisory_xact_lock(\(Self.advisoryLock))", logger: logger)
        var found: Int?
        var versioned = false
        for try await exists in try await connection.query(
            "SELECT to_regclass('schema_version') IS NOT NULL", logger: logger
        ).decode(Bool.self) {
            versioned = exists
        }
        if versioned {
            for try await version in try await connection.query("SELECT max(version) FROM schema_version", logger: logger)
                .decode(Int?.self)
            {
                found = version
            }
        }
        if let found, found > Self.version {
            try await connection.perform("ROLLBACK", logger: logger)
            throw TooNew(found: found)
        }
        if found != Self.version {
            try await connection.perform("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)", logger: logger)
            for statement in Self.statements { try await connection.perform(statement, logger: logger) }
            try await connection.perform("DELETE FROM schema_version", logger: logger)
            try await connection.perform("INSERT INTO schema_version (version) VALUES (\(Self.version))", logger: logger)
        }
        try await connection.perform("COMMIT", logger: logger)
    }
}
