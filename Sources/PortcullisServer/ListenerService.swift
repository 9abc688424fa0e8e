import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PortcullisCore
import ServiceLifecycle
import Synchronization

/// The gateway's listeners: the public one (a ``GatewayHandler`` on each connection), the
/// decision service (a ``DecisionHandler`` on each) and the admin listener.
///
/// It is the last service of the group, so graceful shutdown reaches it first: it stops
/// accepting, lets in-flight requests finish within `shutdown_grace` while libcurl, the key sets
/// and the access log still run, then closes what is left.
final class ListenerService: Service, Sendable {
    private let environment: GatewayEnvironment
    private let group: any EventLoopGroup
    private let address: ListenAddress?
    /// Every open connection of the public and decision listeners, for the drain.
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// - Parameter address: the public listener's address; `nil` for a decision-only gateway
    ///   (`server.listen: ""`).
    init(environment: GatewayEnvironment, group: any EventLoopGroup, address: ListenAddress?) {
        self.environment = environment
        self.group = group
        self.address = address
    }

    private var logger: Logger { self.environment.logger }

    /// Binds the listeners and serves until the service group shuts down gracefully (or is
    /// cancelled), then drains.
    /// - Throws: when a listener cannot be bound or the TLS files cannot be read.
    func run() async throws {
        let listeners = try await self.bind()
        let released = StartupPages.release()
        self.logger.debug(
            "released start-up pages", metadata: ["mappings": "\(released.mappings)", "KiB": "\(released.bytes / 1024)"])

        // Returns when the graceful shutdown reaches this service, or throws if cancelled.
        try? await gracefulShutdown()
        self.logger.notice("shutting down: no longer accepting connections")
        for listener in listeners { try? await listener.close() }
        await self.drain(grace: .milliseconds(Int(self.environment.policies.current.config.server.shutdownGrace)))
    }

    /// Binds the public, decision and admin listeners that the configuration asks for, and
    /// logs each address. On failure, closes the ones already bound.
    private func bind() async throws -> [any Channel] {
        let server = self.environment.policies.current.config.server
        let tlsContext = try server.tls.map(Self.tlsContext)
        var listeners: [any Channel] = []
        do {
            if let address = self.address {
                let bootstrap = self.publicBootstrap(tlsContext: tlsContext)
                let channel = try await bootstrap.bind(host: address.host, port: address.port).get()
                listeners.append(channel)
                self.logger.notice("portcullis listening", metadata: ["address": "\(Self.bound(channel, address))"])
            }
            if let address = self.environment.policies.current.config.decisions?.listen {
                let channel = try await self.decisionsBootstrap().bind(host: address.host, port: address.port).get()
                listeners.append(channel)
                self.logger.notice("decisions listening", metadata: ["address": "\(Self.bound(channel, address))"])
            }
            if let address = server.adminListen {
                let channel = try await self.adminBootstrap().bind(host: address.host, port: address.port).get()
                listeners.append(channel)
                self.logger.notice("admin listening", metadata: ["address": "\(Self.bound(channel, address))"])
            }
        } catch {
            for listener in listeners { try? await listener.close() }
            throw error
        }
        return listeners
    }

    /// Timeouts come from the policy running when a connection is accepted, so a reload
    /// applies them to every connection from then on.
    private func deadlines(counted: Bool) -> ConnectionDeadlines {
        let server = self.environment.policies.current.config.server
        return ConnectionDeadlines(
            idleTimeout: .milliseconds(server.idleTimeout), headerTimeout: .milliseconds(server.requestHeaderTimeout),
            metrics: counted ? self.environment.metrics : nil)
    }

    /// Out of descriptors, accept() fails at once and the listener stays readable: back off
    /// instead of spinning a core on EMFILE.
    private static func backoff(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler()) }
    }

    private func publicBootstrap(tlsContext: NIOSSLContext?) -> ServerBootstrap {
        let environment = self.environment
        return self.trafficBootstrap { sync, deadlines in
            // The deadlines come first: a slow TLS handshake counts against the header deadline.
            if let tlsContext { try sync.addHandler(NIOSSLServerHandler(context: tlsContext)) }
            // The handler answers the decoder's errors itself (and closes the connection).
            try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
            try sync.addHandler(RequestSequencer())
            try sync.addHandler(GatewayHandler(environment: environment, deadlines: deadlines))
        }
        .childChannelOption(.maxMessagesPerRead, value: 4)
        // A client that half-closes after its request still gets the answer (see
        // ConnectionDeadlines); NIOSSL has its own idea of a closing peer, so not with TLS.
        .childChannelOption(.allowRemoteHalfClosure, value: tlsContext == nil)
    }

    /// NIO's request decoder, the ``RequestSequencer`` and the ``DecisionHandler``, which writes
    /// each answer whole, as bytes: no response encoder.
    private func decisionsBootstrap() -> ServerBootstrap {
        let environment = self.environment
        return self.trafficBootstrap { sync, deadlines in
            try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try sync.addHandler(RequestSequencer(wholeAnswers: true))
            try sync.addHandler(DecisionHandler(environment: environment, deadlines: deadlines))
        }
    }

    /// A listener whose connections count in the metrics and the drain: the deadlines first,
    /// then the handlers `addHandlers` adds.
    private func trafficBootstrap(
        addHandlers: @escaping @Sendable (ChannelPipeline.SynchronousOperations, ConnectionDeadlines) throws -> Void
    ) -> ServerBootstrap {
        ServerBootstrap(group: self.group)
            .serverChannelInitializer(Self.backoff)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let deadlines = self.deadlines(counted: true)
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(deadlines)
                    try addHandlers(sync, deadlines)
                    self.track(channel)
                }
            }
    }

    private func adminBootstrap() -> ServerBootstrap {
        let environment = self.environment
        return ServerBootstrap(group: self.group)
            .serverChannelInitializer(Self.backoff)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let deadlines = self.deadlines(counted: false)
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(deadlines)
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(AdminHandler(environment: environment, deadlines: deadlines))
                }
            }
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
        // A cancelled group (another service failed) skips the wait.
        while ContinuousClock.now < deadline && !Task.isCancelled {
            if self.connections.withLock({ $0.isEmpty }) { return }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        let remaining = self.connections.withLock { Array($0.values) }
        if !remaining.isEmpty {
            self.logger.warning("shutdown grace over; closing busy connections", metadata: ["count": "\(remaining.count)"])
            for channel in remaining { channel.close(promise: nil) }
        }
    }
}
