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
    private let draining = Atomic<Bool>(false)

    init(policies: PolicyStore, curl: CurlMulti, logger: Logger, accessLog: AccessLog?, hashThreads: Int) {
        self.hashPool = PasswordHashPool(threads: hashThreads)
        self.accessLog = accessLog
        self.policies = policies
        self.curl = curl
        self.logger = logger
        self.jwks = JWKSFetcher(curl: curl, logger: logger, metrics: self.metrics)
    }

    var isDraining: Bool { self.draining.load(ordering: .relaxed) }

    func startDraining() { self.draining.store(true, ordering: .relaxed) }

}
