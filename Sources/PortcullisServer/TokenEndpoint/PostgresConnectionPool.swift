import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// A few connections to one PostgreSQL server, opened when they are needed.
///
/// A lease takes an idle connection or opens one at once; when all `maximum` are leased it
/// waits for one to come back, at most `waitLimit`. Nothing connects in the background and
/// nothing backs off: after an outage the next lease connects afresh, so the first request
/// after the server is back succeeds, and while it is down each lease fails as fast as the
/// connection attempt does. A connection that saw an error is closed, never reused: it may be
/// in the middle of a transaction.
///
/// Every member is safe from any thread: the state sits behind one lock, and continuations are
/// resumed after it is released.
final class PostgresConnectionPool: Sendable {
    /// No connection could be had: the server is down, unreachable, or every connection stayed busy.
    struct Unavailable: Error, CustomStringConvertible {
        var description: String
    }

    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var idle: [PostgresConnection] = []
        /// Leases that may start without waiting.
        var freeSlots: Int
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    private let state: Mutex<State>
    private let configuration: PostgresConnection.Configuration
    private let group: any EventLoopGroup
    private let waitLimit: TimeAmount
    private let logger: Logger
    private let connectionIDs = Atomic<Int>(0)

    init(
        configuration: PostgresConnection.Configuration, group: any EventLoopGroup, maximum: Int, waitLimit: TimeAmount,
        logger: Logger
    ) {
        self.state = Mutex(State(freeSlots: max(1, maximum)))
        self.configuration = configuration
        self.group = group
        self.waitLimit = waitLimit
        self.logger = logger
    }

    /// Runs `body` with a connection of its own; the connection goes back to the pool when
    /// `body` returns, and is closed when it throws.
    func withConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await self.acquireSlot()
        let connection: PostgresConnection
        do {
            connection = try await self.idleOrNewConnection()
        } catch {
            self.releaseSlot(returning: nil)
            throw error
        }
        do {
            let result = try await body(connection)
            self.releaseSlot(returning: connection)
            return result
        } catch {
            self.releaseSlot(returning: nil)
            try? await connection.close()
            throw error
        }
    }

    /// Closes the idle connections and fails the waiting leases; later leases fail at once.
    func shutdown() async {
        let (idle, waiters) = self.state.withLock { state in
            state.closed = true
            defer {
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: Unavailable(description: "the gateway is shutting down")) }
        for connection in idle { try? await connection.close() }
    }

    private func acquireSlot() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enum Outcome {
                case leased
                case closed
                case waiting(Int)
            }
            let outcome = self.state.withLock { state -> Outcome in
                if state.closed { return .closed }
                if state.freeSlots > 0 {
                    state.freeSlots -= 1
                    return .leased
                }
                state.nextWaiterID += 1
                state.waiters.append(Waiter(id: state.nextWaiterID, continuation: continuation))
                return .waiting(state.nextWaiterID)
            }
            switch outcome {
            case .leased:
                continuation.resume()
            case .closed:
                continuation.resume(throwing: Unavailable(description: "the gateway is shutting down"))
            case .waiting(let id):
                self.group.any().scheduleTask(in: self.waitLimit) { self.expireWaiter(id) }
            }
        }
    }

    /// Whoever takes a waiter out of the list resumes it: a release, this deadline, or shutdown.
    private func expireWaiter(_ id: Int) {
        let waiter = self.state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: Unavailable(description: "every database connection stayed busy"))
    }

    private func releaseSlot(returning connection: PostgresConnection?) {
        let (waiter, surplus) = self.state.withLock { state -> (Waiter?, PostgresConnection?) in
            var surplus: PostgresConnection?
            if let connection, !connection.isClosed {
                if state.closed { surplus = connection } else { state.idle.append(connection) }
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst(), surplus) }
            state.freeSlots += 1
            return (nil, surplus)
        }
        waiter?.continuation.resume()
        if let surplus {
            let _: EventLoopFuture<Void> = surplus.close()
        }
    }

    private func idleOrNewConnection() async throws -> PostgresConnection {
        while let connection = self.state.withLock({ $0.idle.popLast() }) {
            // The server closes connections when it shuts down: those are dropped here.
            if !connection.isClosed { return connection }
        }
        let id = self.connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
        return try await PostgresConnection.connect(
            on: self.group.any(), configuration: self.configuration, id: id, logger: self.logger)
    }
}
