import PortcullisCore
import ServiceLifecycle

/// Keeps every remote key set of the running policy fresh: one loop per set (per issuer with a
/// `jwks_url` or `discovery`), which fetches it at once and then every `jwks_refresh`. While a
/// set has never loaded, its loop retries at least every 30 s, since `/readyz` waits for it; a
/// failed fetch keeps the last good keys.
///
/// A reload hands over the new policy's sets with ``refresh(_:)``: each gets a loop of its own,
/// and the loop of a set the reload replaced ends when it next wakes. Graceful shutdown cancels
/// every loop, including a fetch it waits for.
struct JWKSRefreshService: Service {
    private let fetcher: JWKSFetcher
    private let policies: PolicyStore
    /// Sets to start refreshing, in the order their policies became current.
    private let additions: AsyncStream<[RemoteKeySet]>
    private let continuation: AsyncStream<[RemoteKeySet]>.Continuation

    /// The longest wait between fetches of a set that has never loaded.
    static let notReadyRetry: Milliseconds = 30_000

    init(fetcher: JWKSFetcher, policies: PolicyStore) {
        self.fetcher = fetcher
        self.policies = policies
        (self.additions, self.continuation) = AsyncStream.makeStream(of: [RemoteKeySet].self)
    }

    /// Starts refreshing the remote key sets of `policy`, which is (or has just become) the
    /// running one. Never waits; sets handed over before ``run()`` starts are kept for it.
    func refresh(_ policy: Policy) {
        let sets = Array(policy.verifier.remoteKeySets.values)
        if !sets.isEmpty { self.continuation.yield(sets) }
    }

    func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await sets in self.additions {
                    for set in sets {
                        group.addTask { await self.refreshLoop(set) }
                    }
                }
            }
        }
    }

    /// Fetches `set` now and then on its schedule, until a reload replaces it or the task is
    /// cancelled.
    private func refreshLoop(_ set: RemoteKeySet) async {
        while !Task.isCancelled && self.isCurrent(set) {
            let succeeded = await self.fetcher.scheduledFetch(set)
            let interval = Self.interval(refresh: set.refresh, succeeded: succeeded, loaded: set.isLoaded)
            do {
                try await Task.sleep(for: .milliseconds(interval), clock: .continuous)
            } catch {
                return
            }
        }
    }

    /// The wait before the next scheduled fetch: `jwks_refresh`, or at most 30 s while the set
    /// has never loaded.
    static func interval(refresh: Milliseconds, succeeded: Bool, loaded: Bool) -> Milliseconds {
        succeeded || loaded ? refresh : min(refresh, Self.notReadyRetry)
    }

    private func isCurrent(_ set: RemoteKeySet) -> Bool {
        self.policies.current.verifier.remoteKeySets[set.issuer] === set
    }
}
