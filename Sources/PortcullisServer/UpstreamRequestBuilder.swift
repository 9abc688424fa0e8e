import PortcullisCore
import PortcullisUpstream

extension UpstreamRequest {
    /// The request libcurl sends for a forward plan: the method, URL and header list the
    /// decision computed, byte for byte, and the route's upstream settings (Unix socket,
    /// timeouts, TLS files).
    init(_ plan: ForwardPlan, upstream: UpstreamConfig, body: Body) {
        var lines = UpstreamHeaderLines(reservingBytes: 512)
        for (name, value) in plan.headers { lines.append(name: name, value: value) }
        var socketPath: String?
        if case .unixSocket(let path) = upstream.target { socketPath = path }
        self.init(
            url: plan.upstreamURL, method: plan.method, headers: lines, body: body, unixSocketPath: socketPath,
            connectTimeoutMilliseconds: upstream.connectTimeout, timeoutMilliseconds: upstream.timeout,
            caFile: upstream.tls?.caFile, clientCertFile: upstream.tls?.clientCertFile, clientKeyFile: upstream.tls?.clientKeyFile)
    }
}
