package import Logging
package import NIOCore

/// One ``CurlMulti`` per event loop: each loop's connections send their upstream exchanges to
/// a curl thread and a connection pool of their own, so the gateway scales with its loops
/// instead of stopping at what one curl thread can carry.
///
/// The multi handles are made once, in the event loops' order, and their threads numbered the
/// way NIO numbers its loops, from 1: `curl-N` carries the exchanges of `NIO-ELT-…-#N`.
/// Nothing is shared between them but the process's libcurl global state, so a request never
/// waits on another loop's curl thread. Each keeps up to `maxIdleConnections` upstream
/// connections of its own: an upstream sees up to that many per loop.
package final class CurlPool: Sendable {
    /// The loops' identities, in the order of ``multis``.
    private let loops: [ObjectIdentifier]
    private let multis: [CurlMulti]

    /// Starts one curl thread per event loop.
    /// - Parameters:
    ///   - eventLoops: the loops that start exchanges, in the group's order; at least one.
    ///   - maxIdleConnections: the upstream connections each loop's handle keeps between requests.
    package init(eventLoops: [any EventLoop], logger: Logger, maxIdleConnections: Int = 256) {
        precondition(!eventLoops.isEmpty, "a curl pool needs at least one event loop")
        self.loops = eventLoops.map { ObjectIdentifier($0) }
        self.multis = eventLoops.indices.map { index in
            CurlMulti(logger: logger, threadName: "curl-\(index + 1)", maxIdleConnections: maxIdleConnections)
        }
    }

    /// The multi handle of `eventLoop`, for the exchanges of a connection on it; the first
    /// loop's for a loop the pool was not made with.
    ///
    /// A linear scan: there is one loop per core, and comparing a few identities costs less
    /// than hashing one.
    package func multi(for eventLoop: any EventLoop) -> CurlMulti {
        let wanted = ObjectIdentifier(eventLoop)
        for index in self.loops.indices where self.loops[index] == wanted {
            return self.multis[index]
        }
        return self.multis[0]
    }

    /// The first loop's multi handle, for the gateway's own fetches (key sets, discovery
    /// documents), which belong to no connection.
    package var shared: CurlMulti { self.multis[0] }

    /// How many multi handles (and curl threads) the pool runs.
    package var count: Int { self.multis.count }

    /// Stops every curl thread (``CurlMulti/shutdown()``). Returns at once.
    package func shutdown() {
        for multi in self.multis { multi.shutdown() }
    }
}
