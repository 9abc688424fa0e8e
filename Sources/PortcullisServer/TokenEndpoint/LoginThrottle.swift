import Synchronization

/// Failed logins counted per username and per client address within a sliding window; beyond
/// `maxFailures` a login is refused without running Argon2 (429 with `Retry-After`).
final class LoginThrottle: Sendable {
    private let maxFailures: Int
    private let window: Double
    private let failures = Mutex<[String: [Double]]>([:])

    init(maxFailures: Int, windowSeconds: Double) {
        self.maxFailures = maxFailures
        self.window = windowSeconds
    }

    /// Seconds to wait when `keys` are over the limit, else `nil`.
    func retryAfter(_ keys: [String], now: Double) -> Int? {
        self.failures.withLock { table in
            var wait: Double?
            for key in keys {
                let recent = (table[key] ?? []).filter { now - $0 < self.window }
                table[key] = recent.isEmpty ? nil : recent
                if recent.count >= self.maxFailures, let oldest = recent.first {
                    wait = max(wait ?? 0, oldest + self.window - now)
                }
            }
            return wait.map { max(1, Int($0.rounded(.up))) }
        }
    }

    func recordFailure(_ keys: [String], now: Double) {
        self.failures.withLock { table in
            for key in keys { table[key, default: []].append(now) }
            if table.count > 100_000 { table.removeAll() }  // a flood of random usernames must not grow this forever
        }
    }
}
