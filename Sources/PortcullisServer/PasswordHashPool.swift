#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import PortcullisCore
import Synchronization

/// Runs Argon2 checks off the event loops, on a fixed number of threads
/// (`token_endpoint.max_concurrent_hashes`) with a bounded queue: each check holds 64 MiB, so
/// the bound is what keeps a login flood from exhausting memory. A full queue refuses at once.
final class PasswordHashPool: Sendable {
    private let pool: NIOThreadPool
    private let pending = Atomic<Int>(0)
    private let limit: Int

    init(threads: Int, queuePerThread: Int = 8) {
        self.pool = NIOThreadPool(numberOfThreads: max(1, threads))
        self.pool.start()
        self.limit = max(1, threads) * (queuePerThread + 1)
    }

    /// `nil` when the queue is full.
    func run(_ check: CredentialCheck, on eventLoop: any EventLoop) -> EventLoopFuture<CredentialVerdict>? {
        let count = self.pending.wrappingAdd(1, ordering: .relaxed).newValue
        guard count <= self.limit else {
            self.pending.wrappingSubtract(1, ordering: .relaxed)
            return nil
        }
        let future = self.pool.runIfActive(eventLoop: eventLoop) { () -> CredentialVerdict in
            Self.yieldToEventLoops()
            return check.run()
        }
        future.whenComplete { [pending = self] _ in pending.pending.wrappingSubtract(1, ordering: .relaxed) }
        return future
    }

    func shutdown() { try? self.pool.syncShutdownGracefully() }

    /// Hashing threads run at a lower priority (nice 10), and so do the lane threads libargon2
    /// starts from them: when hashing and the event loops want the same CPU, the loops win, so a
    /// login flood costs logins per second, not the latency of every other route. On Linux the
    /// nice value is per thread, and `who = 0` names the calling thread.
    private static func yieldToEventLoops() {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    }
}
