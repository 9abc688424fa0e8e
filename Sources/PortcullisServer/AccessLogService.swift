import Logging
import ServiceLifecycle

/// Holds the access log open while the gateway runs; at shutdown, gives the lines still
/// buffered up to 2 s to reach their target.
///
/// It is the first service of the group, so it is the last one shut down: every line the
/// listeners write while they drain is flushed. A target that stalls costs those lines, not a
/// hung shutdown.
struct AccessLogService: Service {
    static let flushTimeout: Duration = .seconds(2)

    let log: AccessLog
    let logger: Logger

    func run() async {
        // Returns at graceful shutdown, or throws when the group is cancelled: flush either way.
        try? await gracefulShutdown()
        if !(await self.log.flush(within: Self.flushTimeout)) {
            self.logger.error("the access log target did not take the last lines within 2 s; they are lost")
        }
    }
}
