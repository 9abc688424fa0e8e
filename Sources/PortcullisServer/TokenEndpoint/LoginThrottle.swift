import Synchronization

/// Failed logins counted per client address within a sliding window, shared by the token
/// endpoint, Basic routes and Argon2-hashed API keys; beyond `maxFailures` a guess from that
/// address is refused without running Argon2 (429 with `Retry-After`).
///
/// There is no count per username or client id: such a count lets anyone lock a named user out
/// of their own login, from everywhere and renewably, with a handful of wrong passwords. A
/// guesser with many addresses gets `maxFailures` guesses per address and window; that is the
/// price of never refusing a correct password from an address that has not failed. The address
/// is the client's (``ClientAddress``), so clients behind one trusted proxy are counted apart.
///
/// Both methods are called on event loops: they never wait for I/O.
protocol LoginThrottle: Sendable {
    /// Seconds to wait when `address` is over the limit, else `nil`.
    func retryAfter(address: String, now: Double) -> Int?
    func recordFailure(address: String, now: Double)
}

/// The failures one gateway knows of: its own, each with its time, and those other replicas
/// reported through a shared store, as a count and the oldest time per address.
struct FailureTable {
    let maxFailures: Int
    let window: Double
    private var local: [String: [Double]] = [:]
    private var others: [String: (count: Int, oldest: Double)] = [:]

    /// A flood of addresses must not grow the table forever.
    static let maximumAddresses = 100_000

    init(maxFailures: Int, window: Double) {
        self.maxFailures = maxFailures
        self.window = window
    }

    mutating func retryAfter(address: String, now: Double) -> Int? {
        let recent = (self.local[address] ?? []).filter { now - $0 < self.window }
        self.local[address] = recent.isEmpty ? nil : recent
        var count = recent.count
        var oldest = recent.first
        if let reported = self.others[address], now - reported.oldest < self.window {
            count += reported.count
            oldest = min(oldest ?? reported.oldest, reported.oldest)
        }
        guard count >= self.maxFailures, let oldest else { return nil }
        return max(1, Int((oldest + self.window - now).rounded(.up)))
    }

    mutating func record(address: String, now: Double) {
        self.local[address, default: []].append(now)
        if self.local.count > Self.maximumAddresses { self.local.removeAll() }
    }

    /// Replaces what the other replicas reported with a newer reading of the store.
    mutating func replaceOthers(_ reported: [String: (count: Int, oldest: Double)]) {
        self.others = reported
    }
}

/// The throttle of a gateway that shares no store (`memory:` and `sqlite:` stores).
final class MemoryLoginThrottle: LoginThrottle {
    private let table: Mutex<FailureTable>

    init(maxFailures: Int, windowSeconds: Double) {
        self.table = Mutex(FailureTable(maxFailures: maxFailures, window: windowSeconds))
    }

    func retryAfter(address: String, now: Double) -> Int? {
        self.table.withLock { $0.retryAfter(address: address, now: now) }
    }

    func recordFailure(address: String, now: Double) {
        self.table.withLock { $0.record(address: address, now: now) }
    }
}
