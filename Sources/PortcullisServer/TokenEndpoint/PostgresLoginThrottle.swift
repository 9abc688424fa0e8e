import Logging
import PortcullisCrypto
import PostgresNIO
import Synchronization

/// The login throttle of replicas that share a `postgresql://` store: every failure is counted
/// in the table `login_failures`, so an address's failures on all replicas add up.
///
/// The event loops never wait for the database. Each gateway answers from its own table
/// (``FailureTable``): its failures at once, and the other replicas' as of the last reading.
/// A background task writes new failures and reads the others' counts every
/// ``interval`` (and deletes rows older than the window), so a failure on one replica counts
/// on every other within about twice that. While the database is unreachable each replica
/// counts on its own, keeps the failures it could not write, and writes them once it can.
final class PostgresLoginThrottle: LoginThrottle {
    private struct State {
        var table: FailureTable
        /// Failures not yet written, oldest first.
        var unwritten: [(address: String, at: Double)] = []
    }

    static let interval: Duration = .milliseconds(250)
    /// Failures kept for writing while the database is unreachable.
    private static let maximumUnwritten = 10_000

    private let state: Mutex<State>
    private let database: PostgresDatabase
    private let metrics: GatewayMetrics
    private let logger: Logger
    /// Tells this process's rows from those of the other replicas.
    private let replica = SecureRandom.hex(8)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(database: PostgresDatabase, maxFailures: Int, windowSeconds: Double, metrics: GatewayMetrics, logger: Logger) {
        self.state = Mutex(State(table: FailureTable(maxFailures: maxFailures, window: windowSeconds)))
        self.database = database
        self.metrics = metrics
        self.logger = logger
    }

    func retryAfter(address: String, now: Double) -> Int? {
        self.state.withLock { $0.table.retryAfter(address: address, now: now) }
    }

    func recordFailure(address: String, now: Double) {
        self.state.withLock { state in
            state.table.record(address: address, now: now)
            state.unwritten.append((address, now))
            if state.unwritten.count > Self.maximumUnwritten { state.unwritten.removeFirst(state.unwritten.count / 2) }
        }
    }

    /// Starts the background task that shares the counts.
    func start() {
        self.task.withLock { task in
            guard task == nil else { return }
            task = Task { await self.synchronize() }
        }
    }

    func stop() {
        self.task.withLock { $0?.cancel() }
    }

    private func synchronize() async {
        var lastPurge = 0.0
        while !Task.isCancelled {
            let now = WallClock.now()
            let purge = now - lastPurge > 30
            let succeeded = await self.exchange(now: now, purge: purge)
            if succeeded && purge { lastPurge = now }
            // While the store is down, one attempt a second is enough; its errors are counted.
            try? await Task.sleep(for: succeeded ? Self.interval : .seconds(1))
        }
    }

    /// Writes this replica's new failures and reads the others' counts. - Returns: whether it could.
    private func exchange(now: Double, purge: Bool) async -> Bool {
        let batch = self.state.withLock { state in
            defer { state.unwritten = [] }
            return state.unwritten
        }
        let window = self.state.withLock { $0.table.window }
        let replica = self.replica
        let logger = self.logger
        var written = batch.isEmpty
        do {
            let others = try await self.database.run { connection -> [String: (count: Int, oldest: Double)] in
                if !written {
                    try await connection.perform(
                        """
                        INSERT INTO login_failures (address, failed_at, replica)
                        SELECT address, failed_at, \(replica) FROM unnest(\(batch.map(\.address)), \(batch.map(\.at))) AS f(address, failed_at)
                        """, logger: logger)
                    written = true
                }
                var others: [String: (count: Int, oldest: Double)] = [:]
                for try await (address, count, oldest) in try await connection.query(
                    """
                    SELECT address, count(*), min(failed_at) FROM login_failures
                    WHERE failed_at > \(now - window) AND replica <> \(replica)
                    GROUP BY address LIMIT \(FailureTable.maximumAddresses)
                    """, logger: logger
                ).decode((String, Int, Double).self) {
                    others[address] = (count, oldest)
                }
                if purge {
                    try await connection.perform("DELETE FROM login_failures WHERE failed_at < \(now - window)", logger: logger)
                }
                return others
            }
            self.state.withLock { $0.table.replaceOthers(others) }
            return true
        } catch {
            if !written { self.restore(batch) }
            self.metrics.storeError(operation: "throttle")
            return false
        }
    }

    private func restore(_ batch: [(address: String, at: Double)]) {
        self.state.withLock { state in
            state.unwritten = Array((batch + state.unwritten).suffix(Self.maximumUnwritten))
        }
    }
}
