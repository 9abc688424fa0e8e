import Logging
import NIOPosix
import PortcullisCore
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP: a good file replaces the running policy atomically, a
/// bad one is reported and changes nothing. The access log file is opened again first, as on
/// SIGUSR1.
///
/// Signals that arrive while a reload runs collapse into one more reload (``CoalescedRequests``).
/// Reading files and parsing keys may block, so each reload runs on a thread of
/// `NIOThreadPool.singleton`, never on an event loop or the cooperative pool. Graceful shutdown
/// ends the service; a reload under way finishes first.
struct ConfigReloadService: Service {
    /// Trapped before the listeners start: a reload asked for as soon as the gateway says it is
    /// listening must not meet SIGHUP's default action, which ends the process.
    let hangups: UnixSignalsSequence
    let environment: GatewayEnvironment
    let keySets: JWKSRefreshService
    /// Reads and checks the configuration again.
    let load: @Sendable () -> Result<Policy, ConfigDiagnostics>

    func run() async {
        await cancelWhenGracefulShutdown {
            await CoalescedRequests.run(for: self.hangups) {
                do {
                    try await NIOThreadPool.singleton.runIfActive {
                        LogReopenService.reopen(self.environment.accessLog, logger: self.environment.logger)
                        self.reload()
                    }
                } catch {
                    self.environment.logger.error("cannot reload the configuration", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Reads the configuration and applies it, or reports why not. Blocks.
    private func reload() {
        let logger = self.environment.logger
        switch self.load() {
        case .failure(let diagnostics):
            self.environment.metrics.configReload(succeeded: false)
            for diagnostic in diagnostics.sorted where diagnostic.severity == .error {
                logger.error("configuration rejected", metadata: ["diagnostic": "\(diagnostic)"])
            }
            logger.error("reload failed; the running configuration stays", metadata: ["errors": "\(diagnostics.errors.count)"])
        case .success(let next):
            let previous = self.environment.policies.current
            // Key sets already fetched for the same issuer and URL carry over, so readiness and
            // verification do not wait for a new fetch.
            for (issuer, set) in next.verifier.remoteKeySets {
                if let old = previous.verifier.remoteKeySets[issuer] { set.inherit(from: old) }
            }
            self.environment.policies.replace(with: next)
            self.keySets.refresh(next)
            self.environment.metrics.configReload(succeeded: true)
            logger.notice("configuration reloaded", metadata: ["routes": "\(next.routes.count)"])
            Self.warnAboutRestartSettings(next, previous, logger)
        }
    }

    /// Says which changed settings are fixed at start, rather than appear to have applied them.
    private static func warnAboutRestartSettings(_ next: Policy, _ previous: Policy, _ logger: Logger) {
        let server = next.config.server
        if server.listen != previous.config.server.listen || server.adminListen != previous.config.server.adminListen
            || next.config.decisions?.listen != previous.config.decisions?.listen
        {
            logger.warning(
                "server.listen, server.admin_listen or decisions.listen changed: that takes a restart; still listening as before")
        }
        var fixed: [String] = []
        if server.tls != previous.config.server.tls { fixed.append("server.tls") }
        if server.accessLog != previous.config.server.accessLog { fixed.append("server.access_log") }
        let endpoint = next.config.tokenEndpoint
        let before = previous.config.tokenEndpoint
        if let endpoint, let before,
            endpoint.store != before.store || endpoint.throttleMaxFailures != before.throttleMaxFailures
                || endpoint.throttleWindow != before.throttleWindow || endpoint.maxConcurrentHashes != before.maxConcurrentHashes
        {
            fixed.append("token_endpoint store, login_throttle or max_concurrent_hashes")
        }
        if !fixed.isEmpty {
            logger.warning(
                "changed settings take a restart; the running ones stay", metadata: ["settings": "\(fixed.joined(separator: "; "))"])
        }
    }
}
