import Logging
import PortcullisCore
import PortcullisUpstream
import Synchronization

/// What every connection shares: the policy store, the curl driver, the logger, and whether
/// the gateway is draining for shutdown.
final class GatewayEnvironment: Sendable {
    let policies: PolicyStore
    let curl: CurlMulti
    let logger: Logger
    let jwks: JWKSFetcher
    let accessLog: AccessLog?
    let metrics = GatewayMetrics()
    let hashPool: PasswordHashPool
    /// Failed passwords and API keys, counted alike on the token endpoint, Basic routes and
    /// Argon2-hashed API keys; settings from `token_endpoint.login_throttle` (or its defaults).
    let loginThrottle: LoginThrottle
    /// The token endpoint, when the configuration at start-up had one.
    let tokenService: TokenService?
    private let draining = Atomic<Bool>(false)

    init(policies: PolicyStore, curl: CurlMulti, logger: Logger, accessLog: AccessLog?, hashThreads: Int) throws {
        let hashPool = PasswordHashPool(threads: hashThreads)
        self.hashPool = hashPool
        let endpoint = policies.current.config.tokenEndpoint
        let throttle = LoginThrottle(
            maxFailures: endpoint?.throttleMaxFailures ?? TokenEndpointConfig.defaultThrottleMaxFailures,
            windowSeconds: Double(endpoint?.throttleWindow ?? TokenEndpointConfig.defaultThrottleWindow) / 1000)
        self.loginThrottle = throttle
        if let endpoint = policies.current.config.tokenEndpoint {
            self.tokenService = try TokenService(
                endpoint: endpoint, hashPool: hashPool, throttle: throttle, metrics: self.metrics, logger: logger)
        } else {
            self.tokenService = nil
        }
        self.accessLog = accessLog
        self.policies = policies
        self.curl = curl
        self.logger = logger
        self.jwks = JWKSFetcher(curl: curl, logger: logger, metrics: self.metrics)
    }

    var isDraining: Bool { self.draining.load(ordering: .relaxed) }

    func startDraining() { self.draining.store(true, ordering: .relaxed) }

}
