import Foundation
package import Logging
import NIOCore
import NIOPosix
package import PortcullisCore
import PortcullisUpstream
import ServiceLifecycle
import UnixSignals

/// The gateway process: what its services share (``GatewayEnvironment``), the event loops, and
/// the service group that runs and stops them.
package final class GatewayServer: Sendable {
    private let environment: GatewayEnvironment
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger

    package init(policy: Policy, logger: Logger) throws {
        let accessLog = try AccessLog(policy.config.server.accessLog)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: Self.usableCores())
        let curl = CurlPool(eventLoops: Array(group.makeIterator()), logger: logger)
        self.environment = try GatewayEnvironment(policies: PolicyStore(policy), curl: curl, logger: logger, accessLog: accessLog,
            hashThreads: policy.config.tokenEndpoint?.maxConcurrentHashes ?? 2, group: group)
        self.group = group
        self.logger = logger
    }

    /// Connects to the token store when it is a database, and logs whether it could; the
    /// gateway serves either way (the token endpoint answers 503 until the store is reachable).
    /// - Throws: when the database's schema is newer than this gateway's: it must not be used.
    package func connectStore() async throws {
        try await self.environment.connectStore()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    ///
    /// The gateway runs as a swift-service-lifecycle `ServiceGroup`. It starts the services in
    /// the order of the list and shuts them down in reverse, each after the one above it ended:
    ///
    /// 1. ``ListenerService``: stops accepting and drains in-flight requests within `shutdown_grace`;
    /// 2. ``ConfigReloadService``: SIGHUP reloads (`reload` reads the configuration again);
    /// 3. ``LogReopenService``: SIGUSR1 reopens the access log file;
    /// 4. ``JWKSRefreshService``: the key-set refresh loops;
    /// 5. ``CurlLoopService``: libcurl, which the drain and the key sets needed until then;
    /// 6. ``AccessLogService``: the last access log lines are flushed.
    ///
    /// Then the password hashing threads, the token store and the event loops stop.
    package func serve(
        listen address: ListenAddress?, reload: @escaping @Sendable () -> Result<Policy, ConfigDiagnostics>
    ) async throws {
        let environment = self.environment
        // SIGHUP and SIGUSR1 are trapped before anything listens: a reload asked for as soon as
        // the gateway says it is listening must not meet the default action, which ends the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let rotations = await UnixSignalsSequence(trapping: .sigusr1)
        let keySets = JWKSRefreshService(fetcher: environment.jwks, policies: environment.policies)
        keySets.refresh(environment.policies.current)
        environment.startSharingThrottle()

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let accessLog = environment.accessLog {
            services.append(.init(service: AccessLogService(log: accessLog, logger: self.logger)))
        }
        services.append(.init(service: CurlLoopService(loops: environment.curl)))
        services.append(.init(service: keySets))
        let reopening = LogReopenService(rotations: rotations, accessLog: environment.accessLog, logger: self.logger)
        services.append(.init(service: reopening))
        let reloading = ConfigReloadService(hangups: hangups, environment: environment, keySets: keySets, load: reload)
        services.append(.init(service: reloading))
        services.append(.init(service: ListenerService(environment: environment, group: self.group, address: address)))
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger))

        let failure: (any Error)?
        do {
            try await group.run()
            failure = nil
        } catch {
            failure = error
        }
        environment.hashPool.shutdown()
        await environment.shutdownStore()
        try? await self.group.shutdownGracefully()
        if let failure { throw failure }
        self.logger.notice("stopped")
    }

    /// The CPUs this process may run on (its affinity mask, which `taskset` and container CPU
    /// sets narrow): one event loop each. More loops than CPUs only add context switches.
    static func usableCores() -> Int {
        // `Cpus_allowed` in /proc/self/status is the affinity mask in hex, comma-separated words.
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        {
            let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
            let count = mask.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
            if count > 0 { return min(count, System.coreCount) }
        }
        return System.coreCount
    }
}
