package import PortcullisCore
import Synchronization

/// The policy in force. Each request takes one reference under a short lock; a reload swaps
/// in a new, fully built policy, and in-flight requests finish on the one they started with.
package final class PolicyStore: Sendable {
    private let policy: Mutex<Policy>

    package init(_ policy: Policy) { self.policy = Mutex(policy) }

    package var current: Policy { self.policy.withLock { $0 } }

    package func replace(with policy: Policy) { self.policy.withLock { $0 = policy } }
}
