#if canImport(Glibc)
import Glibc
#endif

/// How the gateway's own threads ask the Linux scheduler to treat them.
package enum ThreadScheduling {
    /// `SCHED_BATCH` from `<sched.h>`, which Swift's Glibc module does not export (it sits
    /// behind `_GNU_SOURCE`). The value is fixed by the Linux ABI.
    private static let schedBatch: Int32 = 3

    /// Puts the calling thread under `SCHED_BATCH`: the same share of the CPU as before, but
    /// its wake-ups no longer preempt the thread that is running, so it runs when that thread
    /// blocks or its time slice ends.
    /// - Returns: `false` if the kernel refused (the thread keeps its policy).
    @discardableResult
    package static func preferThroughput() -> Bool {
        var parameters = sched_param()
        parameters.sched_priority = 0
        return pthread_setschedparam(pthread_self(), Self.schedBatch, &parameters) == 0
    }
}
