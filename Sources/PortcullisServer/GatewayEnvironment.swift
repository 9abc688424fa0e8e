import Logging
import NIOCore
import PortcullisCore
import PortcullisUpstream
import Synchronization

/// What every connection shares: the policy store, the curl drivers (one per event loop), the
/// logger, and whether the gateway is draining for shutdown.
final class GatewayEnvironment: Sendable {
    let policies: PolicyStore
    /// A connection starts its exchanges on its own event loop's multi handle
    /// (``CurlPool/multi(for:)``); key-set fetches use ``CurlPool/shared``.
    let curl: CurlPool
    let logger: Logger
    let jwks: JWKSFetcher
    let accessLog: AccessLog?
    let metrics = GatewayMetrics()
    let hashPool: PasswordHashPool
    /// Failed passwords and API keys, counted alike on the token endpoint, Basic routes and
    /// Argon2-hashed API keys; settings from `token_endpoint.login_throttle` (or its defaults).
    /// Counted in the database when the store is PostgreSQL, so that replicas count together.
    let loginThrottle: any LoginThrottle
    /// The token endpoint, when the configuration at start-up had one.
    let tokenService: TokenService?
    /// The database of a `postgresql://` store.
    let database: PostgresDatabase?
    private let draining = Atomic<Bool>(false)

    init(
        policies: PolicyStore, curl: CurlPool, logger: Logger, accessLog: AccessLog?, hashThreads: Int,
        group: any EventLoopGroup
    ) throws {
        let hashPool = PasswordHashPool(threads: hashThreads)
        self.hashPool = hashPool
        let endpoint = policies.current.config.tokenEndpoint
        let maxFailures = endpoint?.throttleMaxFailures ?? TokenEndpointConfig.defaultThrottleMaxFailures
        let window = Double(endpoint?.throttleWindow ?? TokenEndpointConfig.defaultThrottleWindow) / 1000
        let store: any RefreshTokenStore
        switch endpoint?.store {
        case .postgresql(let settings)?:
            let database = try PostgresDatabase(settings: settings, group: group, logger: logger)
            self.database = database
            store = PostgresRefreshTokenStore(database: database, logger: logger)
            self.loginThrottle = PostgresLoginThrottle(
                database: database, maxFailures: maxFailures, windowSeconds: window, metrics: self.metrics, logger: logger)
        case .sqlite(let path)?:
            self.database = nil
            store = try SQLiteRefreshTokenStore(path: path)
            self.loginThrottle = MemoryLoginThrottle(maxFailures: maxFailures, windowSeconds: window)
        case .memory?, nil:
            self.database = nil
            store = MemoryRefreshTokenStore()
            self.loginThrottle = MemoryLoginThrottle(maxFailures: maxFailures, windowSeconds: window)
        }
        if endpoint != nil {
            self.tokenService = TokenService(
                store: store, hashPool: hashPool, throttle: self.loginThrottle, metrics: self.metrics, logger: logger)
        } else {
            self.tokenService = nil
        }
        self.accessLog = accessLog
        self.policies = policies
        self.curl = curl
        self.logger = logger
        self.jwks = JWKSFetcher(curl: curl.shared, logger: logger, metrics: self.metrics)
    }

    var isDraining: Bool { self.draining.load(ordering: .relaxed) }

    func startDraining() { self.draining.store(true, ordering: .relaxed) }

    /// Connects to a PostgreSQL store once, so that the log says whether it is reachable.
    /// - Throws: ``PostgresSchema/TooNew`` when the database belongs to a newer gateway.
    func connectStore() async throws {
        try await self.database?.connectAtStart()
    }

    /// Starts sharing the login-throttle counts through a PostgreSQL store (once).
    func startSharingThrottle() {
        (self.loginThrottle as? PostgresLoginThrottle)?.start()
    }

    func shutdownStore() async {
        (self.loginThrottle as? PostgresLoginThrottle)?.stop()
        await self.database?.shutdown()
    }

}
