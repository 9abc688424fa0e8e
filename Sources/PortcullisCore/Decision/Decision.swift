/// What the gateway does with one request. The server executes it; the dry-run tools print it.
package enum Decision: Sendable {
    case forward(ForwardPlan)
    case refuse(Refusal)
}

/// An allowed request, fully resolved: where it goes and with which path.
package struct ForwardPlan: Sendable {
    package var routeIndex: Int
    package var routeName: String
    package var upstream: UpstreamConfig
    /// The path and query sent upstream: the normalized path, after `strip_prefix`, under the
    /// upstream URL's own base path, followed by the query exactly as received.
    package var upstreamTarget: String
    /// The full upstream URL (`http://127.0.0.1:9001/items?x=1`).
    package var upstreamURL: String
}

/// The facts of a request the decision needs, before normalization.
package struct RequestFacts: Sendable {
    package var method: String
    package var rawTarget: String
    /// The `Host` header value, if any (with port).
    package var host: String?
    /// The `Authorization` header values the client sent.
    package var authorization: [String]

    package init(method: String, rawTarget: String, host: String?, authorization: [String] = []) {
        self.method = method
        self.rawTarget = rawTarget
        self.host = host
        self.authorization = authorization
    }
}
