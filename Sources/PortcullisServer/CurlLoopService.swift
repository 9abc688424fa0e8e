import PortcullisUpstream
import ServiceLifecycle

/// What ``CurlLoopService`` stops: the thread or threads that run libcurl's multi interface.
/// They start when they are made, so only their end belongs to the service group.
protocol UpstreamLoops: Sendable {
    /// Cancels the transfers still running and ends the loops. Returns at once.
    func shutdown()
}

extension CurlPool: UpstreamLoops {}

/// Keeps the upstream transfer loops running until graceful shutdown, then stops them.
///
/// It comes before the listeners and the key-set refreshes in the service group, so it stops
/// after them: in-flight requests drain and the last key-set fetches end while libcurl still runs.
struct CurlLoopService: Service {
    let loops: any UpstreamLoops

    func run() async {
        // Returns at graceful shutdown, or throws when the group is cancelled: stop either way.
        try? await gracefulShutdown()
        self.loops.shutdown()
    }
}
