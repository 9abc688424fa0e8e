import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Logging
import PortcullisCore
import PortcullisServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Listen on HOST:PORT instead of server.listen.")
    var listen: String?

    @Flag(name: .long, help: "Shadow mode: log refusals as would_deny and forward the requests anyway.")
    var dryRun = false

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            throw ValidationError("unknown log level '\(self.logLevel)'")
        }
        var address: ListenAddress?
        if let listen = self.listen {
            guard let parsed = ScalarParsers.listenAddress(listen) else {
                throw ValidationError("--listen must be HOST:PORT, such as 127.0.0.1:8080 or [::]:8080")
            }
            address = ListenAddress(host: parsed.host, port: parsed.port)
        }
        // A log reader that goes away costs log lines (EPIPE), not the process.
        signal(SIGPIPE, SIG_IGN)
        // Log lines go through a writer thread, so a stalled stderr reader never stops an event
        // loop; at exit, they get 2 s to reach it.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler(label: label, stream: LineWriter.standardError.stream)
            handler.logLevel = level
            return handler
        }
        atexit { LineWriter.standardError.flush(timeout: .seconds(2)) }
        let logger = Logger(label: "portcullis")
        let result = self.options.load()
        for diagnostic in result.diagnostics.sorted { printError(diagnostic.description) }
        guard var config = result.config else {
            logger.error("invalid configuration; not starting", metadata: ["file": "\(self.options.path)"])
            throw ExitCode(2)
        }
        if self.dryRun { config.server.dryRun = true }
        Self.warnAboutShadowMode(config, logger)
        let server: GatewayServer
        do {
            server = try GatewayServer(policy: Policy(config: config), logger: logger)
        } catch {
            // A file the configuration names could not be opened (the refresh-token store, the
            // access log): a configuration problem, so exit 2 like one.
            let place = config.tokenEndpoint.map { "\($0.location)" } ?? self.options.path
            printError("\(place): error: cannot start: \(error)")
            throw ExitCode(2)
        }
        do {
            try await server.connectStore()
        } catch {
            let place = config.tokenEndpoint.map { "\($0.location)" } ?? self.options.path
            printError("\(place): error: cannot start: \(error)")
            throw ExitCode(2)
        }
        let options = self.options
        let dryRun = self.dryRun
        try await server.serve(listen: address ?? config.server.listen) {
            let result = options.load()
            for diagnostic in result.diagnostics.warnings { logger.warning("\(diagnostic)") }
            guard var reloaded = result.config else { return .failure(result.diagnostics) }
            if dryRun { reloaded.server.dryRun = true }
            // A reload can open routes as surely as a restart can: it warns the same way.
            Self.warnAboutShadowMode(reloaded, logger)
            return .success(Policy(config: reloaded))
        }
    }

    private static func warnAboutShadowMode(_ config: GatewayConfig, _ logger: Logger) {
        let shadowed = config.routes.filter { config.server.dryRun || $0.mode == .dryRun }.map(\.name)
        guard !shadowed.isEmpty else { return }
        logger.warning(
            "SHADOW MODE (dry run) is on: refusals are only logged as would_deny and the requests are FORWARDED",
            metadata: ["routes": "\(shadowed.joined(separator: ","))"])
    }
}
