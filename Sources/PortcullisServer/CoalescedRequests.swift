/// Requests for work that runs one run at a time, where the requests that arrive while a run is
/// under way collapse into one more run after it.
///
/// A burst of SIGHUPs (a loop in a deploy script, log rotation) must not queue a reload per
/// signal: however many arrive during a reload, one more reload follows and reads the file as it
/// is by then. A request that arrives while no run is under way starts one.
///
/// ``request()`` and ``finish()`` may be called from any task or thread; ``run(_:)`` is called
/// by one task only.
struct CoalescedRequests: Sendable {
    private let requests: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        // One slot: a request made while it is full replaces the one waiting there.
        (self.requests, self.continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for one more run. Never waits.
    func request() {
        self.continuation.yield()
    }

    /// Ends the requests: ``run(_:)`` returns once the run asked for last (if any) is done.
    func finish() {
        self.continuation.finish()
    }

    /// Runs `work` once per collapsed request, one run at a time, until ``finish()`` or until the
    /// calling task is cancelled (a run under way is not interrupted).
    func run(_ work: () async -> Void) async {
        for await _ in self.requests {
            await work()
        }
    }

    /// Runs `work` for the elements of `triggers` (such as a `UnixSignalsSequence`), collapsed as
    /// above, until `triggers` ends or the calling task is cancelled.
    static func run<Triggers: AsyncSequence & Sendable>(
        for triggers: Triggers, _ work: @escaping @Sendable () async -> Void
    ) async where Triggers.Element: Sendable {
        let requests = CoalescedRequests()
        await withDiscardingTaskGroup { group in
            group.addTask {
                do {
                    for try await _ in triggers { requests.request() }
                } catch {}
                requests.finish()
            }
            await requests.run(work)
        }
    }
}
