import NIOCore
import NIOHTTP1
import PortcullisCore
import PortcullisUpstream

/// A request being decided: its head, and, while a password check or a key set fetch runs
/// (``DecisionRunner``), the body parts that arrive meanwhile.
struct PendingRequest {
    var head: HTTPRequestHead
    var declaredLength: Int64?
    var chunked: Bool
    var requestID: String
    var generation: Int
    var ended = false
    /// Body parts that arrived while waiting; reading stops meanwhile, so these stay few.
    var buffered: [ByteBuffer] = []
    var bufferedBytes = 0
    /// The decision was not final at once: reading was paused for it.
    var waited = false
}

/// One forwarded request.
final class ForwardExchange {
    let generation: Int
    var transfer: UpstreamTransfer?
    /// Cleared when the response can only end with the connection (HTTP/1.0, no length).
    var keepAlive: Bool
    var requestEnded = false
    var responseHeadSent = false
    var requestBodyBytes = 0
    let requestID: String
    let isHead: Bool
    /// An HTTP/1.0 client: no chunked coding can be sent to it (RFC 9112 §6.1).
    let clientIsHTTP10: Bool
    /// Fields the decision adds to the upstream's response (CORS).
    var responseHeaders: [(name: String, value: String)] = []

    init(generation: Int, keepAlive: Bool, requestID: String, isHead: Bool, clientIsHTTP10: Bool) {
        self.generation = generation
        self.keepAlive = keepAlive
        self.requestID = requestID
        self.isHead = isHead
        self.clientIsHTTP10 = clientIsHTTP10
    }
}
