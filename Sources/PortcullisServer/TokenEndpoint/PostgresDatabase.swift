import Logging
import NIOCore
import NIOSSL
import PortcullisCore
import PostgresNIO
import Synchronization

/// The PostgreSQL database of a `postgresql://` store, shared by every replica that names it:
/// the refresh tokens (``PostgresRefreshTokenStore``) and the login-throttle counters
/// (``PostgresLoginThrottle``).
///
/// The schema is created, or checked, on the first use that reaches the server, so a gateway
/// that starts while the database is down begins to work once it is up. A database whose
/// schema is newer than this gateway's is never written to.
///
/// Logs say when the database becomes unreachable and when it is back, once each, with the
/// URL as ``PostgresStoreSettings/description`` gives it: never the password.
final class PostgresDatabase: Sendable {
    /// The store failed: it could not be reached, or refused what was asked.
    struct Failure: Error, CustomStringConvertible {
        var underlying: any Error
        var description: String { PostgresDatabase.describe(self.underlying) }
    }

    private enum Health {
        case unknown
        case reachable
        case unreachable
    }

    let settings: PostgresStoreSettings
    private let pool: PostgresConnectionPool
    private let schemaReady = Atomic<Bool>(false)
    private let health = Mutex(Health.unknown)
    private let logger: Logger

    /// How long a connection attempt, or a wait for a busy connection, may take before the
    /// request it serves is answered 503.
    static let connectTimeout: Int64 = 3

    init(settings: PostgresStoreSettings, group: any EventLoopGroup, logger: Logger) throws {
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.user, password: settings.password,
            database: settings.database, tls: try Self.tls(settings))
        configuration.options.connectTimeout = .seconds(Self.connectTimeout)
        // A statement stuck behind a lock must not hold a token request for ever.
        configuration.options.additionalStartupParameters = [("application_name", "portcullis"), ("statement_timeout", "10s")]
        self.settings = settings
        self.logger = logger
        self.pool = PostgresConnectionPool(
            configuration: configuration, group: group, maximum: 8, waitLimit: .seconds(Self.connectTimeout), logger: logger)
    }

    /// `sslmode` as libpq reads it: `prefer` and `require` encrypt without checking who
    /// answers, `verify-ca` checks the chain, `verify-full` the chain and the host name.
    private static func tls(_ settings: PostgresStoreSettings) throws -> PostgresConnection.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch settings.sslMode {
        case .disable:
            return .disable
        case .prefer, .require:
            configuration.certificateVerification = .none
        case .verifyCA:
            configuration.certificateVerification = .noHostnameVerification
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
        }
        if let root = settings.sslRootCert { configuration.trustRoots = .file(root) }
        let context = try NIOSSLContext(configuration: configuration)
        return settings.sslMode == .prefer ? .prefer(context) : .require(context)
    }

    /// Runs `body` on a connection of its own, once the schema is in place.
    /// - Throws: ``Failure``, whatever went wrong.
    func run<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            let result = try await self.pool.withConnection { connection in
                if !self.schemaReady.load(ordering: .acquiring) {
                    try await PostgresSchema.prepare(connection, logger: self.logger)
                    self.schemaReady.store(true, ordering: .releasing)
                }
                return try await body(connection)
            }
            self.recordHealth(.reachable, error: nil)
            return result
        } catch {
            self.recordHealth(.unreachable, error: error)
            throw Failure(underlying: error)
        }
    }

    /// Connects once, at start, so that the log says whether the store is reachable.
    /// - Throws: only ``PostgresSchema/TooNew``: such a database must not be used at all.
    func connectAtStart() async throws {
        do {
            try await self.run { _ in }
        } catch let failure as Failure where failure.underlying is PostgresSchema.TooNew {
            throw failure.underlying
        } catch {
            // Logged by `run`; the gateway starts all the same and answers 503 until it connects.
        }
    }

    func shutdown() async { await self.pool.shutdown() }

    private func recordHealth(_ now: Health, error: (any Error)?) {
        let before = self.health.withLock { health in
            defer { health = now }
            return health
        }
        guard before != now else { return }
        let store: Logger.MetadataValue = "\(self.settings)"
        switch (before, now) {
        case (.unknown, .reachable):
            self.logger.notice("token store connected", metadata: ["store": store, "schema_version": "\(PostgresSchema.version)"])
        case (_, .reachable):
            self.logger.notice("token store reachable again", metadata: ["store": store])
        case (_, .unreachable):
            self.logger.warning(
                "token store unreachable: the token endpoint answers 503 until it is back",
                metadata: ["store": store, "error": "\(error.map(Self.describe) ?? "-")"])
        case (_, .unknown):
            break
        }
    }

    /// What went wrong, for logs: the error's kind and the server's message, never the query
    /// or its values.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as PSQLError:
            var text = "\(error.code)"
            if let message = error.serverInfo?[.message] { text += ": \(message)" }
            if let underlying = error.underlying { text += " (\(Self.describe(underlying)))" }
            return text
        case let error as PostgresTransactionError:
            let inner = error.beginError ?? error.closureError ?? error.commitError ?? error.rollbackError
            return inner.map(Self.describe) ?? "transaction failed"
        case let error as Failure:
            return Self.describe(error.underlying)
        default:
            return "\(error)"
        }
    }
}

extension PostgresConnection {
    /// Runs a statement and reads its rows to the end, so that it has completed on return.
    func perform(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}
