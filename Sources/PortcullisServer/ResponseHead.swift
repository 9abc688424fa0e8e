import NIOHTTP1
import PortcullisCore
import PortcullisUpstream

/// The head the client gets for an upstream's response head.
enum ResponseHead {
    /// Hop-by-hop fields (and those `Connection` lists) are dropped both ways (RFC 9110 §7.6.1);
    /// the upstream's `X-Request-Id` gives way to the request's own. `keepAlive` is cleared when
    /// the response can only end with the connection (an HTTP/1.0 client, no length).
    static func rewrite(
        _ head: UpstreamResponseHead, requestID: String, adding extra: [(name: String, value: String)] = [],
        clientIsHTTP10: Bool, isHead: Bool, keepAlive: inout Bool
    ) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 2)
        let listed = HopByHopHeaders.listedInConnection(head.headers)
        for (name, value) in head.headers {
            if HopByHopHeaders.isAlways(name) || name.equalsIgnoringASCIICase("x-request-id") { continue }
            if !listed.isEmpty && listed.contains(name.lowercased()) { continue }
            headers.add(name: name, value: value)
        }
        headers.add(name: "X-Request-Id", value: requestID)
        for (name, value) in extra {
            // The gateway's CORS answer replaces the upstream's own.
            if name.equalsIgnoringASCIICase("access-control-allow-origin") { headers.remove(name: name) }
            headers.add(name: name, value: value)
        }
        let status = HTTPResponseStatus(statusCode: head.status, reasonPhrase: head.reason)
        var version = HTTPVersion.http1_1
        if clientIsHTTP10, status.mayHaveResponseBody, !isHead, !headers.contains(name: "content-length") {
            // No chunked coding for HTTP/1.0 (RFC 9112 §6.1): the body ends with the connection.
            // NIO frames by the head's version, so the head says 1.0.
            version = .http1_0
            keepAlive = false
        }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if clientIsHTTP10 {
            headers.add(name: "Connection", value: "keep-alive")  // HTTP/1.0 closes by default
        }
        return HTTPResponseHead(version: version, status: status, headers: headers)
    }

    /// The head of an answer of the gateway's own: a refusal, or a document it publishes.
    static func refusal(_ refusal: Refusal, requestID: String, keepAlive: Bool, clientIsHTTP10: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        for (name, value) in refusal.headers { headers.add(name: name, value: value) }
        if refusal.status != 204 {  // a 204 has neither (RFC 9110 §8.6, §15.3.5)
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(refusal.body.count))
        }
        headers.add(name: "X-Request-Id", value: requestID)
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if clientIsHTTP10 {
            headers.add(name: "Connection", value: "keep-alive")  // HTTP/1.0 closes by default
        }
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: refusal.status), headers: headers)
    }
}
