import Dispatch
import Foundation
package import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
package import PortcullisCore
import PortcullisUpstream
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The gateway's listeners: the public one (a ``GatewayHandler`` on each connection), the
/// decision service (a ``DecisionHandler`` on each) and the admin listener; shuts down
/// gracefully.
package final class GatewayServer: Sendable {
    private let environment: GatewayEnvironment
    private let group: MultiThreadedEventLoopGroup
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
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

    /// Serves under a swift-service-lifecycle group: SIGTERM and SIGINT begin a graceful
    /// shutdown, which ``run(listen:reload:)`` turns into a drain.
    package func serve(
        listen address: ListenAddress?, reload: @escaping @Sendable () -> Result<Policy, ConfigDiagnostics>
    ) async throws {
        let service = GatewayService(server: self, address: address, reload: reload)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger))
        try await group.run()
    }

    /// Binds `address` and serves until the service group shuts down gracefully (SIGTERM or
    /// SIGINT), then lets in-flight requests finish within `shutdown_grace`. On SIGHUP, `reload`
    /// reads the configuration again (off the event loops); a good one replaces the running
    /// policy, a bad one is reported and changes nothing.
    package func run(
        listen address: ListenAddress?, reload: @escaping @Sendable () -> Result<Policy, ConfigDiagnostics>
    ) async throws {
        // SIGHUP is trapped before anything listens: a reload asked for as soon as the gateway
        // says it is listening must not meet the default action, which ends the process.
        let hangupSignals = await UnixSignalsSequence(trapping: .sighup)
        let rotateSignals = await UnixSignalsSequence(trapping: .sigusr1)
        let server = self.environment.policies.current.config.server
        let environment = self.environment
        // Timeouts come from the policy running when a connection is accepted, so a reload
        // applies them to every connection from then on.
        @Sendable func deadlines(counted: Bool) -> ConnectionDeadlines {
            let server = environment.policies.current.config.server
            return ConnectionDeadlines(
                idleTimeout: .milliseconds(server.idleTimeout), headerTimeout: .milliseconds(server.requestHeaderTimeout),
                metrics: counted ? environment.metrics : nil)
        }
        let tlsContext = try server.tls.map(Self.tlsContext)
        // Out of descriptors, accept() fails at once and the listener stays readable: back off
        // instead of spinning a core on EMFILE.
        @Sendable func backoff(_ channel: any Channel) -> EventLoopFuture<Void> {
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler()) }
        }
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelInitializer(backoff)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            // A client that half-closes after its request still gets the answer (see
            // ConnectionDeadlines); NIOSSL has its own idea of a closing peer, so not with TLS.
            .childChannelOption(.allowRemoteHalfClosure, value: tlsContext == nil)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let deadlines = deadlines(counted: true)
                    let sync = channel.pipeline.syncOperations
                    // First, so a slow TLS handshake counts against the header deadline too.
                    try sync.addHandler(deadlines)
                    if let tlsContext { try sync.addHandler(NIOSSLServerHandler(context: tlsContext)) }
                    // Parse errors are answered by GatewayHandler itself, which closes the connection.
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    try sync.addHandler(RequestSequencer())
                    try sync.addHandler(GatewayHandler(environment: environment, deadlines: deadlines))
                    self.track(channel)
                }
            }
        self.startKeySets(self.environment.policies.current)
        self.environment.startSharingThrottle()
        // `server.listen: ""`: a decision-only gateway has no public listener.
        var channel: (any Channel)?
        if let address {
            let publicChannel = try await bootstrap.bind(host: address.host, port: address.port).get()
            channel = publicChannel
            self.logger.notice("portcullis listening", metadata: ["address": "\(Self.bound(publicChannel, address))"])
        }

        var decisions: (any Channel)?
        if let decisionsAddress = self.environment.policies.current.config.decisions?.listen {
            let decisionsBootstrap = ServerBootstrap(group: self.group)
                .serverChannelInitializer(backoff)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        let deadlines = deadlines(counted: true)
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(deadlines)
                        try sync.configureHTTPServerPipeline(withErrorHandling: true)
                        try sync.addHandler(DecisionHandler(environment: environment, deadlines: deadlines))
                        self.track(channel)
                    }
                }
            let decisionsChannel = try await decisionsBootstrap.bind(host: decisionsAddress.host, port: decisionsAddress.port).get()
            decisions = decisionsChannel
            self.logger.notice("decisions listening", metadata: ["address": "\(Self.bound(decisionsChannel, decisionsAddress))"])
        }

        var admin: (any Channel)?
        if let adminAddress = server.adminListen {
            let adminBootstrap = ServerBootstrap(group: self.group)
                .serverChannelInitializer(backoff)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let deadlines = deadlines(counted: false)
                        try channel.pipeline.syncOperations.addHandler(deadlines)
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(AdminHandler(environment: environment, deadlines: deadlines))
                    }
                }
            let adminChannel = try await adminBootstrap.bind(host: adminAddress.host, port: adminAddress.port).get()
            admin = adminChannel
            self.logger.notice("admin listening", metadata: ["address": "\(Self.bound(adminChannel, adminAddress))"])
        }

        let released = StartupPages.release()
        self.logger.debug(
            "released start-up pages", metadata: ["mappings": "\(released.mappings)", "KiB": "\(released.bytes / 1024)"])

        // Reloads run one at a time on their own queue: reading files and parsing keys may block.
        let reloadQueue = DispatchQueue(label: "portcullis.reload")
        // Signals that arrive while a reload runs are merged into one more reload: a burst of
        // SIGHUPs (a loop in a deploy script, log rotation) must not queue a reload per signal.
        let reloads = CoalescedWork()
        let hangups = Task { [self] in
            for await _ in hangupSignals {
                guard reloads.request() else { continue }
                reloadQueue.async {
                    repeat {
                        self.reopenAccessLog()
                        self.reload(reload, listening: address)
                    } while reloads.finishOrContinue()
                }
            }
        }
        // SIGUSR1 (nginx's signal for it, and what logrotate configurations send) only reopens
        // the access log file.
        let rotations = Task { [self] in
            for await _ in rotateSignals {
                reloadQueue.async { self.reopenAccessLog() }
            }
        }

        // Returns when the service group begins its graceful shutdown, or throws if cancelled.
        try? await gracefulShutdown()
        self.logger.notice("shutting down: no longer accepting connections")
        try? await channel?.close()
        try? await decisions?.close()
        try? await admin?.close()
        await self.drain(grace: .milliseconds(Int(self.environment.policies.current.config.server.shutdownGrace)))
        hangups.cancel()
        rotations.cancel()
        self.environment.jwks.stop()
        self.environment.curl.shutdown()
        if let log = self.environment.accessLog, !log.flush(timeout: .seconds(2)) {
            self.logger.error("the access log target did not take the last lines within 2 s; they are lost")
        }
        self.environment.hashPool.shutdown()
        await self.environment.shutdownStore()
        try? await self.group.shutdownGracefully()
        self.logger.notice("stopped")
    }

    /// The address a listener bound (with the port the system chose for port 0).
    private static func bound(_ channel: any Channel, _ address: ListenAddress) -> String {
        channel.localAddress.map { "\($0.ipAddress ?? address.host):\($0.port ?? address.port)" } ?? "\(address)"
    }

    /// TLS 1.2 and later with the certificate chain and key of `server.tls`; HTTP/1.1 by ALPN.
    static func tlsContext(_ files: TLSFiles) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(files.certFile).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }

    private func startKeySets(_ policy: Policy) {
        let policies = self.environment.policies
        self.environment.jwks.start(Array(policy.verifier.remoteKeySets.values)) { set in
            policies.current.verifier.remoteKeySets[set.issuer] === set
        }
    }

    /// Runs on the reload queue, never on an event loop: reading files and parsing keys may block.
    /// Opens the access log file again by name; on failure the old descriptor stays in use.
    private func reopenAccessLog() {
        guard let log = self.environment.accessLog else { return }
        do {
            if let path = try log.reopen() { self.logger.notice("access log reopened", metadata: ["file": "\(path)"]) }
        } catch {
            self.logger.error("cannot reopen the access log; still writing to the old file", metadata: ["error": "\(error)"])
        }
    }

    private func reload(_ load: @Sendable () -> Result<Policy, ConfigDiagnostics>, listening: ListenAddress?) {
        switch load() {
        case .failure(let diagnostics):
            self.environment.metrics.configReload(succeeded: false)
            for diagnostic in diagnostics.sorted where diagnostic.severity == .error {
                self.logger.error("configuration rejected", metadata: ["diagnostic": "\(diagnostic)"])
            }
            self.logger.error("reload failed; the running configuration stays", metadata: ["errors": "\(diagnostics.errors.count)"])
        case .success(let next):
            let previous = self.environment.policies.current
            // Key sets already fetched for the same issuer and URL carry over, so readiness and
            // verification do not wait for a new fetch.
            for (issuer, set) in next.verifier.remoteKeySets {
                if let old = previous.verifier.remoteKeySets[issuer] { set.inherit(from: old) }
            }
            self.environment.policies.replace(with: next)
            self.startKeySets(next)
            self.environment.metrics.configReload(succeeded: true)
            self.logger.notice("configuration reloaded", metadata: ["routes": "\(next.routes.count)"])
            let server = next.config.server
            if server.listen != previous.config.server.listen || server.adminListen != previous.config.server.adminListen
                || next.config.decisions?.listen != previous.config.decisions?.listen
            {
                self.logger.warning(
                    "server.listen, server.admin_listen or decisions.listen changed: that takes a restart; still listening as before")
            }
            // The rest of what is fixed at start: say so rather than appear to have applied it.
            var fixed: [String] = []
            if server.tls != previous.config.server.tls { fixed.append("server.tls") }
            if server.accessLog != previous.config.server.accessLog { fixed.append("server.access_log") }
            let endpoint = next.config.tokenEndpoint, before = previous.config.tokenEndpoint
            if let endpoint, let before,
                endpoint.store != before.store || endpoint.throttleMaxFailures != before.throttleMaxFailures
                    || endpoint.throttleWindow != before.throttleWindow || endpoint.maxConcurrentHashes != before.maxConcurrentHashes
            {
                fixed.append("token_endpoint store, login_throttle or max_concurrent_hashes")
            }
            if !fixed.isEmpty {
                self.logger.warning(
                    "changed settings take a restart; the running ones stay", metadata: ["settings": "\(fixed.joined(separator: "; "))"])
            }
        }
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

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        self.connections.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = self.connections.withLock { $0.removeValue(forKey: id) }
        }
    }

    /// Closes idle connections now and the busy ones as their exchanges end, until `grace` runs out.
    private func drain(grace: Duration) async {
        self.environment.startDraining()
        let deadline = ContinuousClock.now + grace
        // Idle keep-alive connections have nothing in flight: a half-close of their read side
        // is not enough for clients that pipeline, so they are closed once idle.
        for channel in self.connections.withLock({ Array($0.values) }) {
            channel.pipeline.handler(type: ConnectionDeadlines.self).whenSuccess { deadlines in
                deadlines.closeIfIdle()
            }
        }
        while ContinuousClock.now < deadline {
            if self.connections.withLock({ $0.isEmpty }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let remaining = self.connections.withLock { Array($0.values) }
        if !remaining.isEmpty {
            self.logger.warning("shutdown grace over; closing busy connections", metadata: ["count": "\(remaining.count)"])
            for channel in remaining { channel.close(promise: nil) }
        }
    }
}

/// The gateway as one service of a `ServiceGroup`.
struct GatewayService: Service {
    let server: GatewayServer
    let address: ListenAddress?
    let reload: @Sendable () -> Result<Policy, ConfigDiagnostics>

    func run() async throws {
        try await self.server.run(listen: self.address, reload: self.reload)
    }
}

/// Work that is asked for again while it runs is done once more afterwards, however many times
/// it was asked for meanwhile.
final class CoalescedWork: Sendable {
    private let state = Mutex((running: false, again: false))

    /// - Returns: `true` when the caller should start the work; `false` when it is running and
    ///   will run once more.
    func request() -> Bool {
        self.state.withLock { state in
            if state.running {
                state.again = true
                return false
            }
            state.running = true
            return true
        }
    }

    /// Called when one run ends. - Returns: `true` when the work must run again.
    func finishOrContinue() -> Bool {
        self.state.withLock { state in
            if state.again {
                state.again = false
                return true
            }
            state.running = false
            return false
        }
    }
}
