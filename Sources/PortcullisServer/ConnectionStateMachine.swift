import NIOCore
import NIOHTTP1
import PortcullisCore
import PortcullisUpstream

/// The life of one client connection, as a value: which request is being answered and how
/// far, whether reading is held back, and what each event leads to. Every transition returns
/// the ``Action`` that carries it out; ``GatewayHandler`` executes actions and keeps no
/// request state of its own. No socket, policy or upstream is needed to drive it, so the
/// connection's rules (keep-alive, pipelining, HTTP/1.0, backpressure, failures on either
/// side) are tested value by value.
///
/// ```
/// idle ─head─▶ (framing refused) ─────────────────────▶ discarding ─end─▶ idle | closing
///      ─head─▶ awaitingDecision ─decided─▶ forwarding | discarding | collectingToken
///      ─head─▶ forwarding ─upstream head─▶ streaming ─upstream end─▶ idle | closing
///      ─head─▶ collectingToken ─end─▶ answeringToken ─answer─▶ idle | closing
/// ```
///
/// `TokenRequest` is what the token endpoint needs to answer (``TokenExchange`` in `serve`),
/// carried from the request head to the end of its body.
struct ConnectionStateMachine<TokenRequest> {
    /// What the connection is doing.
    enum State {
        case idle
        /// A password check or a key set fetch runs before the decision is final; reading is
        /// held back, and body parts that were already on their way wait here.
        case awaitingDecision(Waiting)
        /// The upstream exchange runs and its response head has not come.
        case forwarding(Exchange)
        /// The upstream's response head went to the client; its body follows.
        case streaming(Exchange)
        /// A token endpoint request: its body is collected, then answered whole.
        case collectingToken(TokenRequest, TokenBody)
        /// The token endpoint's answer is being computed.
        case answeringToken
        /// The request was answered before its body ended: the rest is read and dropped.
        case discarding(keepAlive: Bool)
        /// The connection ends once what was written is out; nothing more is read as a request.
        case closing
    }

    /// The request being answered, as its head described it.
    struct Request {
        var generation = 0
        var requestID = ""
        /// The client allows the connection to stay open after this request.
        var keepAlive = false
        var isHTTP10 = false
        var isHead = false
        var isConnect = false
        /// `Expect: 100-continue` on a request that has a body.
        var expectsContinue = false
        var framing = RequestFraming.Framing(declaredLength: nil, chunked: false)
        var usuallyWithoutBody = true
        var maximumBody = 0
    }

    /// One forwarded request.
    struct Exchange {
        /// Cleared when the response can only end with the connection (HTTP/1.0, no length).
        var keepAlive: Bool
        var requestEnded = false
        var bodyBytes = 0
        /// Fields the decision adds to the upstream's response (CORS).
        var responseHeaders: [(name: String, value: String)]
    }

    /// What arrived while a decision waited.
    struct Waiting {
        var buffered: [ByteBuffer] = []
        var ended = false
    }

    struct TokenBody {
        var bytes: [UInt8] = []
        var limit: Int
        var tooLarge = false
    }

    /// An answer of the gateway's own: a refusal, a document, a token endpoint reply, or the
    /// error that replaces an upstream's answer.
    struct Answer {
        var refusal: Refusal
        /// Before draining: the handler closes anyway while the gateway shuts down.
        var keepAlive: Bool
        var decision: DecisionLabel
        var isHTTP10: Bool
        /// The request has ended: the connection is idle once the answer is out.
        var idleAfter = false
        var cancelUpstream = false
        /// The upstream failed: counted and logged.
        var upstreamFailure: UpstreamError?
        /// The upstream exchange ended with this answer (its duration is logged).
        var endsUpstream = false
        /// A read held back meanwhile is passed on first.
        var read = false
        /// The answer is to bytes that never made a request head: a new log context is needed.
        var startsRequest = false
    }

    /// The connection ends without an answer of its own.
    struct Close {
        var cancelUpstream = false
        /// What the last upstream events wrote goes out first.
        var flush = false
        var log: (decision: DecisionLabel, reason: Reason?)?
        var upstreamFailure: UpstreamError.Kind?
    }

    enum Action {
        case none
        /// Pass a held-back read on.
        case read
        /// Hand a part of the request body to the upstream exchange.
        case sendBody(ByteBuffer)
        case endUpstreamBody
        case writeHead(HTTPResponseHead)
        case writeBody(ByteBuffer)
        /// The upstream's response ended: write its end, then idle or close.
        case finishResponse(keepAlive: Bool, read: Bool)
        case answer(Answer)
        /// The token endpoint's request is complete: compute its answer.
        case answerToken(TokenRequest, body: [UInt8])
        case close(Close)
        /// The connection waits for its next request.
        case becameIdle
    }

    /// What to do with a request head.
    enum HeadAction {
        /// Decide it, then call one of ``answer(_:)``, ``forward(responseHeaders:)``,
        /// ``awaitDecision()`` or ``collectTokenBody(_:limit:)``.
        case decide
        /// Its framing is refused.
        case answer(Action)
        /// The connection is closing: nothing more is answered.
        case ignore
    }

    /// How a forwarded request's body goes upstream, and whether the client gets a `100 Continue`.
    struct Start {
        var body: UpstreamRequest.Body
        var sendContinue: Bool
    }

    private(set) var state = State.idle
    private(set) var request = Request()
    private var heldForDecision = false
    private var heldForUpstream = false
    private var readPending = false

    /// The current request's number; events of earlier requests (a late upstream event, a
    /// decision that finished after its client left) carry an older one and are dropped.
    var generation: Int { self.request.generation }

    // MARK: reading

    /// A read was asked for: `true` to pass it on now; otherwise it is passed on once nothing
    /// holds reading back.
    mutating func readRequested() -> Bool {
        if self.heldForDecision || self.heldForUpstream {
            self.readPending = true
            return false
        }
        return true
    }

    private mutating func takePendingRead() -> Bool {
        guard self.readPending, !self.heldForDecision, !self.heldForUpstream else { return false }
        self.readPending = false
        return true
    }

    // MARK: the request

    mutating func receivedHead(_ head: HTTPRequestHead, requestID: String, maximumBody: Int) -> HeadAction {
        if case .closing = self.state { return .ignore }
        self.state = .idle
        self.heldForDecision = false
        self.heldForUpstream = false
        let generation = self.request.generation &+ 1
        let isHTTP10 = head.version.major == 1 && head.version.minor == 0
        self.request = Request(
            generation: generation, requestID: requestID, keepAlive: head.isKeepAlive, isHTTP10: isHTTP10,
            isHead: head.method == .HEAD, isConnect: head.method == .CONNECT, usuallyWithoutBody: head.method.usuallyWithoutBody,
            maximumBody: maximumBody)
        switch RequestFraming.read(head, maximumBody: maximumBody) {
        case .refused(var refusal):
            // The bytes after a head whose framing is in doubt cannot start a request.
            refusal.closesConnection = true
            return .answer(self.answer(refusal))
        case .framed(let framing):
            self.request.framing = framing
            if !isHTTP10, framing.chunked || (framing.declaredLength ?? 0) > 0 {
                // HTTP/1.0 clients never get a 1xx (RFC 9110 §10.1.1): they send the body regardless.
                self.request.expectsContinue = head.headers[canonicalForm: "expect"].contains {
                    $0.utf8.elementsEqual("100-continue".utf8, by: { $0 | 0x20 == $1 })
                }
            }
            return .decide
        }
    }

    /// The request is answered by the gateway (a refusal, a document, a preflight): the rest
    /// of its body is dropped.
    mutating func answer(_ refusal: Refusal) -> Action {
        // After CONNECT the parser treats the connection as a tunnel: nothing after it can be read as HTTP.
        let keepAlive = self.request.keepAlive && !self.request.isConnect && !refusal.closesConnection
        self.state = .discarding(keepAlive: keepAlive)
        return .answer(
            Answer(refusal: refusal, keepAlive: keepAlive, decision: refusal.status < 400 ? .allow : .deny, isHTTP10: self.request.isHTTP10))
    }

    /// The decision waits for a password check or a key set fetch: reading stops meanwhile.
    mutating func awaitDecision() {
        self.state = .awaitingDecision(Waiting())
        self.heldForDecision = true
    }

    /// The decision the request of `generation` waited for is final. Returns what arrived
    /// meanwhile (`nil` when the connection moved on): act on the decision, hand each part to
    /// ``receiveBody(_:)`` and the end to ``receiveEnd()``, then call ``waitOver()``.
    mutating func decisionArrived(generation: Int) -> Waiting? {
        guard case .awaitingDecision(let waiting) = self.state, generation == self.request.generation else { return nil }
        self.state = .idle
        return waiting
    }

    /// Reading goes on after a wait (unless the upstream asked for a pause meanwhile).
    mutating func waitOver() -> Action {
        self.heldForDecision = false
        return self.takePendingRead() ? .read : .none
    }

    /// The decision forwards the request: the upstream exchange starts.
    mutating func forward(responseHeaders: [(name: String, value: String)]) -> Start {
        let framing = self.request.framing
        let body: UpstreamRequest.Body
        if framing.chunked {
            body = .streamed
        } else if let length = framing.declaredLength, length > 0 || !self.request.usuallyWithoutBody {
            body = .length(length)
        } else {
            body = .none
        }
        self.state = .forwarding(Exchange(keepAlive: self.request.keepAlive, responseHeaders: responseHeaders))
        return Start(body: body, sendContinue: body != .none && self.request.expectsContinue)
    }

    /// A token endpoint request: its body is collected up to `limit` bytes.
    mutating func collectTokenBody(_ token: TokenRequest, limit: Int) {
        self.state = .collectingToken(token, TokenBody(limit: limit))
    }

    mutating func receiveBody(_ buffer: ByteBuffer) -> Action {
        switch self.state {
        case .forwarding(var exchange), .streaming(var exchange):
            guard !exchange.requestEnded else { return .none }
            exchange.bodyBytes += buffer.readableBytes
            if exchange.bodyBytes > self.request.maximumBody {
                // Not one byte past the limit reaches the upstream.
                if case .streaming = self.state {
                    self.state = .closing
                    return .close(Close(cancelUpstream: true, log: (.allow, .bodyTooLarge)))
                }
                self.state = .closing
                var answer = Answer(
                    refusal: Refusal.bodyTooLarge, keepAlive: false,
                    decision: .deny, isHTTP10: self.request.isHTTP10)
                answer.cancelUpstream = true
                return .answer(answer)
            }
            if case .streaming = self.state { self.state = .streaming(exchange) } else { self.state = .forwarding(exchange) }
            return .sendBody(buffer)
        case .awaitingDecision(var waiting):
            waiting.buffered.append(buffer)
            self.state = .awaitingDecision(waiting)
            return .none
        case .collectingToken(let token, var body):
            if body.bytes.count + buffer.readableBytes > body.limit {
                body.tooLarge = true
            } else {
                body.bytes.append(contentsOf: buffer.readableBytesView)
            }
            self.state = .collectingToken(token, body)
            return .none
        case .idle, .answeringToken, .discarding, .closing:
            return .none
        }
    }

    /// The upstream cannot take more of the body for now: reading stops until it asks again.
    mutating func upstreamBodyFull() {
        self.heldForUpstream = true
    }

    mutating func receiveEnd() -> Action {
        switch self.state {
        case .idle, .answeringToken, .closing:
            return .none
        case .discarding(let keepAlive):
            self.state = keepAlive ? .idle : .closing
            return keepAlive ? .becameIdle : .none
        case .awaitingDecision(var waiting):
            waiting.ended = true
            self.state = .awaitingDecision(waiting)
            return .none
        case .collectingToken(let token, let body):
            if body.tooLarge {
                self.state = .closing
                return .answer(
                    Answer(
                        refusal: Refusal.bodyTooLarge, keepAlive: false,
                        decision: .deny, isHTTP10: self.request.isHTTP10))
            }
            self.state = .answeringToken
            return .answerToken(token, body: body.bytes)
        case .forwarding(var exchange):
            exchange.requestEnded = true
            self.state = .forwarding(exchange)
            return .endUpstreamBody
        case .streaming(var exchange):
            exchange.requestEnded = true
            self.state = .streaming(exchange)
            return .endUpstreamBody
        }
    }

    /// The token endpoint's reply to the request of `generation`.
    mutating func tokenAnswered(generation: Int, _ reply: Refusal, decision: DecisionLabel) -> Action {
        guard case .answeringToken = self.state, generation == self.request.generation else { return .none }
        self.state = self.request.keepAlive ? .idle : .closing
        var answer = Answer(refusal: reply, keepAlive: self.request.keepAlive, decision: decision, isHTTP10: self.request.isHTTP10)
        answer.idleAfter = true
        return .answer(answer)
    }

    // MARK: the upstream (events on the connection's loop)

    mutating func upstreamHead(_ head: UpstreamResponseHead, generation: Int) -> Action {
        guard case .forwarding(var exchange) = self.state, generation == self.request.generation else { return .none }
        let response = ResponseHead.rewrite(
            head, requestID: self.request.requestID, adding: exchange.responseHeaders, clientIsHTTP10: self.request.isHTTP10,
            isHead: self.request.isHead, keepAlive: &exchange.keepAlive)
        self.state = .streaming(exchange)
        return .writeHead(response)
    }

    mutating func upstreamBody(_ buffer: ByteBuffer, generation: Int) -> Action {
        guard case .streaming = self.state, generation == self.request.generation else { return .none }
        return .writeBody(buffer)
    }

    /// The upstream can take more of the request body.
    mutating func upstreamWantsBody(generation: Int) -> Action {
        switch self.state {
        case .forwarding, .streaming: break
        default: return .none
        }
        guard generation == self.request.generation else { return .none }
        self.heldForUpstream = false
        return self.takePendingRead() ? .read : .none
    }

    mutating func upstreamFinished(_ error: UpstreamError?, generation: Int) -> Action {
        let exchange: Exchange
        let headSent: Bool
        switch self.state {
        case .forwarding(let current) where generation == self.request.generation: (exchange, headSent) = (current, false)
        case .streaming(let current) where generation == self.request.generation: (exchange, headSent) = (current, true)
        default: return .none
        }
        // Whether the gateway was waiting for the client's body (rather than holding it back
        // because the upstream was behind) when the exchange ended.
        let waitingForClient = !exchange.requestEnded && !self.heldForUpstream
        self.heldForUpstream = false
        let read = self.takePendingRead()
        guard let error else {
            // A response may end before the client finished its body; the rest cannot be framed
            // for anyone, so the connection closes after the answer.
            let keepAlive = exchange.keepAlive && exchange.requestEnded
            self.state = keepAlive ? .idle : .closing
            return .finishResponse(keepAlive: keepAlive, read: read)
        }
        if headSent {
            // The head is out: the client can only learn of the failure by the connection closing.
            self.state = .closing
            return .close(Close(flush: true, log: (.allow, .upstreamFailedMidBody), upstreamFailure: error.kind))
        }
        let refusal: Refusal
        switch error.kind {
        case .timeout where waitingForClient:
            // The client stopped sending its body: its fault, not the upstream's (nginx's
            // client_body_timeout answers the same way).
            self.state = .closing
            var answer = Answer(
                refusal: Refusal(status: 408, detail: "Request Timeout", reason: .clientBodyTimeout), keepAlive: false,
                decision: .allow, isHTTP10: self.request.isHTTP10)
            answer.endsUpstream = true
            answer.read = read
            return .answer(answer)
        case .timeout:
            refusal = Refusal(status: 504, detail: "Gateway Timeout", reason: .upstreamTimeout)
        case .cancelled:
            // Only the gateway cancels an exchange, and it leaves the request first; one that is
            // still current was cancelled from outside (shutdown).
            self.state = .closing
            return .close(Close(flush: true, log: (.allow, .cancelled)))
        case .badGateway, .requestBody:
            refusal = Refusal(status: 502, detail: "Bad Gateway", reason: .upstreamError)
        }
        let keepAlive = exchange.keepAlive && exchange.requestEnded
        self.state = exchange.requestEnded ? (keepAlive ? .idle : .closing) : .closing
        var answer = Answer(refusal: refusal, keepAlive: keepAlive, decision: .allow, isHTTP10: self.request.isHTTP10)
        answer.idleAfter = exchange.requestEnded
        answer.upstreamFailure = error
        answer.endsUpstream = true
        answer.read = read
        return .answer(answer)
    }

    // MARK: the connection

    /// A request the parser cannot frame unambiguously (RFC 9112 §6.3, §11.2: CL with TE,
    /// differing lengths, obs-fold, bare CR or LF, bad chunk sizes, control characters) gets a
    /// 400 when no response is under way, and the connection closes either way: the bytes that
    /// follow cannot be trusted to start a request.
    mutating func parseFailed(_ error: HTTPParserError) -> Action {
        // NIO's decoder stops at 80 KiB of names and values: that is 431 (RFC 6585 §5).
        let refusal =
            error == .headerOverflow
            ? Refusal(status: 431, detail: "Request Header Fields Too Large", reason: .headersTooLarge)
            : Refusal(status: 400, detail: "Bad Request", reason: .badFraming)
        let cutShort = error == .invalidEOFState
        let previous = self.state
        self.state = .closing
        switch previous {
        case .streaming:
            return .close(Close(cancelUpstream: true, log: (.allow, cutShort ? .clientClosed : .badFraming)))
        case .forwarding:
            // A client that stopped partway through the body of a request the policy allowed (an
            // upload it gave up on) gets a 400 in case it still reads, as nginx answers, and the
            // decision stays the policy's.
            var answer =
                cutShort
                ? Answer(
                    refusal: Refusal(status: 400, detail: "Bad Request", reason: .incompleteBody), keepAlive: false,
                    decision: .allow, isHTTP10: self.request.isHTTP10)
                : Answer(refusal: refusal, keepAlive: false, decision: .deny, isHTTP10: self.request.isHTTP10)
            answer.cancelUpstream = true
            return .answer(answer)
        case .discarding:
            // The request was answered already: what failed is the rest of its body (or the
            // client closed during it). A second answer is one the client never asked for, and a
            // second log line would count one request twice; the connection just ends.
            return .close(Close())
        case .closing:
            return .none
        case .idle, .awaitingDecision, .collectingToken, .answeringToken:
            var answer = Answer(refusal: refusal, keepAlive: false, decision: .deny, isHTTP10: self.request.isHTTP10)
            if case .idle = previous { answer.startsRequest = true }
            return .answer(answer)
        }
    }

    /// The connection is gone: an exchange under way is cancelled and its request logged.
    mutating func channelClosed() -> Close? {
        defer { self.state = .closing }
        switch self.state {
        case .forwarding, .streaming: return Close(cancelUpstream: true, log: (.allow, .clientClosed))
        default: return nil
        }
    }
}
