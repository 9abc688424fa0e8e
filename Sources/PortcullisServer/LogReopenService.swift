import Logging
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// Opens the access log file again by its name on SIGUSR1 (nginx's signal for it, and what
/// logrotate configurations send); nothing else changes.
///
/// SIGUSR1 stays trapped with `access_log: stdout` or `off` too, where it does nothing: its
/// default action would end the process. Opening a file may block, so it runs on a thread of
/// `NIOThreadPool.singleton`; signals that arrive meanwhile collapse into one more reopening.
struct LogReopenService: Service {
    /// Trapped before the listeners start, like SIGHUP.
    let rotations: UnixSignalsSequence
    let accessLog: AccessLog?
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown {
            await CoalescedRequests.run(for: self.rotations) {
                _ = try? await NIOThreadPool.singleton.runIfActive {
                    Self.reopen(self.accessLog, logger: self.logger)
                }
            }
        }
    }

    /// Opens the access log file again by name; on failure the old descriptor stays in use.
    /// Blocks: never called on an event loop or the cooperative pool.
    static func reopen(_ log: AccessLog?, logger: Logger) {
        guard let log else { return }
        do {
            if let path = try log.reopen() { logger.notice("access log reopened", metadata: ["file": "\(path)"]) }
        } catch {
            logger.error("cannot reopen the access log; still writing to the old file", metadata: ["error": "\(error)"])
        }
    }
}
