/// One request to send upstream, already decided and rewritten by the gateway.
package struct UpstreamRequest: Sendable {
    package enum Body: Sendable, Equatable {
        /// No body and no framing header (GET, HEAD, DELETE without a body…).
        case none
        /// Exactly this many bytes, sent with `Content-Length`.
        case length(Int64)
        /// Unknown length, sent chunked.
        case streamed
    }

    package var url: String
    package var method: String
    /// Header lines to send, `Name: value`, already filtered of hop-by-hop and framing headers.
    package var headers: [String]
    package var body: Body
    package var unixSocketPath: String?
    package var connectTimeoutMilliseconds: Int64
    package var timeoutMilliseconds: Int64
    package var caFile: String?
    package var clientCertFile: String?
    package var clientKeyFile: String?

    package init(
        url: String, method: String, headers: [String], body: Body, unixSocketPath: String? = nil,
        connectTimeoutMilliseconds: Int64, timeoutMilliseconds: Int64, caFile: String? = nil,
        clientCertFile: String? = nil, clientKeyFile: String? = nil
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.unixSocketPath = unixSocketPath
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.caFile = caFile
        self.clientCertFile = clientCertFile
        self.clientKeyFile = clientKeyFile
    }
}

/// The status line and headers of an upstream's final (non-1xx) response.
package struct UpstreamResponseHead: Sendable {
    package var status: Int
    package var reason: String
    /// In the order received; repeated names (`Set-Cookie`) stay separate.
    package var headers: [(name: String, value: String)]
}
