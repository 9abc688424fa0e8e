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
final class LoginThrottle: Sendable {
    private let maxFailures: Int
    private let window: Double
    private let failures = Mutex<[String: [Double]]>([:])

    init(maxFailures: Int, windowSeconds: Double) {
        self.maxFailures = maxFailures
        self.window = windowSeconds
    }

    /// Seconds to wait when `address` is over the limit, else `nil`.
    func retryAfter(address: String, now: Double) -> Int? {
        self.failures.withLock { table in
            let recent = (table[address] ?? []).filter { now - $0 < self.window }
            table[address] = recent.isEmpty ? nil : recent
            guard recent.count >= self.maxFailures, let oldest = recent.first else { return nil }
            return max(1, Int((oldest + self.window - now).rounded(.up)))
        }
    }

    func recordFailure(address: String, now: Double) {
        self.failures.withLock { table in
            table[address, default: []].append(now)
            if table.count > 100_000 { table.removeAll() }  // a flood of addresses must not grow this forever
        }
    }
}
