import PortcullisCrypto
import Synchronization

/// Tokens that passed verification, keyed by the SHA-256 of the token so the cache never holds
/// a raw bearer credential. An entry is good until the token's `exp` (plus leeway); the cache
/// belongs to one policy, so a reload or key rotation starts a new, empty one.
///
/// Sharded so concurrent requests rarely meet on a lock; each shard evicts its oldest entry
/// when full.
package final class VerifiedTokenCache: Sendable {
    package struct Key: Hashable, Sendable {
        let a: UInt64, b: UInt64, c: UInt64, d: UInt64

        package init(token: Substring) {
            var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            func digest(_ bytes: UnsafeRawBufferPointer) {
                withUnsafeMutableBytes(of: &words) { out in _ = DigestAlgorithm.sha256.hash(bytes, into: out) }
            }
            if token.utf8.withContiguousStorageIfAvailable({ digest(UnsafeRawBufferPointer($0)) }) == nil {
                Array(token.utf8).withUnsafeBytes(digest)
            }
            // The digest's bytes as they lie in memory: a key only needs to be the same for the
            // same token on this machine.
            (self.a, self.b, self.c, self.d) = words
        }
    }

    private struct Shard {
        var entries: [Key: VerifiedToken] = [:]
        var order: [Key] = []
        var head = 0
    }

    private final class ShardBox: Sendable {
        let state = Mutex(Shard())
    }

    private let shards: [ShardBox]
    private let perShard: Int

    package init(capacity: Int) {
        let count = capacity >= 64 ? 16 : 1
        self.perShard = max(1, capacity / count)
        self.shards = (0..<count).map { _ in ShardBox() }
    }

    package func lookup(_ key: Key, now: Double, leeway: Double) -> VerifiedToken? {
        self.shards[Int(key.a % UInt64(self.shards.count))].state.withLock { shard in
            guard let token = shard.entries[key] else { return nil }
            return now <= token.expiresAt + leeway ? token : nil
        }
    }

    /// Forgets every entry (after a key rotation).
    package func removeAll() {
        for shard in self.shards {
            shard.state.withLock { $0 = Shard() }
        }
    }

    package func insert(_ key: Key, _ token: VerifiedToken) {
        self.shards[Int(key.a % UInt64(self.shards.count))].state.withLock { shard in
            if shard.entries.updateValue(token, forKey: key) != nil { return }
            if shard.order.count < self.perShard {
                shard.order.append(key)
            } else {
                // Ring buffer of insertion order: replace the oldest.
                shard.entries.removeValue(forKey: shard.order[shard.head])
                shard.order[shard.head] = key
                shard.head = (shard.head + 1) % self.perShard
            }
        }
    }
}
