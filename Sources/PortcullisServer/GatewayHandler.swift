import Logging
import NIOCore
import NIOHTTP1
import PortcullisCore
import PortcullisCrypto
import PortcullisUpstream
import Synchronization

/// Runs the gateway for one client connection: decides each request, answers refusals, and
/// streams allowed requests through libcurl in both directions.
///
/// Confined to the channel's event loop. Upstream events arrive on the curl thread and are
/// handed over through ``UpstreamBridge``, which re-enters this handler on its loop and drops
/// events of an exchange that is no longer current.
final class GatewayHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        /// A refusal was sent; the rest of the request body is read and dropped.
        case discarding(keepAlive: Bool)
        case forwarding(ForwardExchange)
        /// Waiting for a key set fetch or a password check before deciding again.
        case awaiting(PendingRequest)
        /// A request to the token endpoint: its body is collected, then answered whole.
        case token(TokenExchange)
    }

    private let environment: GatewayEnvironment
    private let deadlines: ConnectionDeadlines
    private var state = State.idle
    private var generation = 0
    private var readPaused = false
    private var readPending = false
    /// Response bytes written for the current upstream batch and not yet flushed.
    private var unflushed = false
    /// The request being answered is HTTP/1.0: keeping its connection must be said explicitly.
    private var answeringHTTP10 = false
    private var context: ChannelHandlerContext?
    private var peerText = ""
    /// What the access log line of the current request needs.
    private var current = RequestLogContext()
    private var series = RequestSeriesCache()

    init(environment: GatewayEnvironment, deadlines: ConnectionDeadlines) {
        self.environment = environment
        self.deadlines = deadlines
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.channel.remoteAddress { self.peerText = address.ipAddress ?? "unknown" }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = self.state {
            exchange.transfer?.cancel()
            self.logRequest(decision: "allow", reason: "client_closed")
        }
        self.state = .idle
        context.fireChannelInactive()
    }

    /// A request the parser cannot frame unambiguously (RFC 9112 §6.3, §11.2: CL with TE,
    /// differing lengths, obs-fold, bare CR or LF, bad chunk sizes, control characters) gets a
    /// 400 when no response is under way, and the connection closes either way: the bytes that
    /// follow cannot be trusted to start a request.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parser error can arrive after the connection closed: closing from inside the decoder's
        // own delivery (a refusal that ends the connection) makes it finish afterwards, and the
        // end of a body cut short is no request of its own.
        guard context.channel.isActive else { return }
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        // NIO's decoder stops at 80 KiB of names and values: that is 431 (RFC 6585 §5).
        let refusal =
            parserError == .headerOverflow
            ? Refusal(status: 431, detail: "Request Header Fields Too Large", reason: "headers_too_large")
            : Refusal(status: 400, detail: "Bad Request", reason: "bad_framing")
        switch self.state {
        case .forwarding(let exchange) where exchange.responseHeadSent:
            exchange.transfer?.cancel()
            self.state = .idle
            context.close(promise: nil)
        case .forwarding(let exchange):
            exchange.transfer?.cancel()
            self.state = .idle
            // A client that stopped partway through the body of a request the policy allowed (an
            // upload it gave up on) gets a 400 in case it still reads, as nginx answers, and the
            // decision stays the policy's.
            let cutShort = parserError == .invalidEOFState
            self.writeRefusal(
                cutShort ? Refusal(status: 400, detail: "Bad Request", reason: "incomplete_body") : refusal,
                requestID: exchange.requestID, keepAlive: false, decision: cutShort ? "allow" : "deny", context: context)
        case .discarding:
            // The request was answered already: what failed is the rest of its body (or the
            // client closed during it). A second answer is one the client never asked for, and a
            // second log line would count one request twice; the connection just ends.
            self.state = .discarding(keepAlive: false)
            context.close(promise: nil)
        case .idle, .awaiting, .token:
            if case .idle = self.state {
                self.current = RequestLogContext(
                    requestID: RequestID.next(), client: self.peerText, start: MonotonicClock.nanoseconds(), logged: false)
            }
            self.state = .idle
            self.writeRefusal(refusal, requestID: self.current.requestID, keepAlive: false, decision: "deny", context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = self.state {
            exchange.transfer?.clientWritabilityChanged(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Holds back reads while the upstream is behind on the request body.
    func read(context: ChannelHandlerContext) {
        if self.readPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.deadlines.headReceived()
            self.receiveHead(head, context: context)
        case .body(let buffer):
            self.receiveBody(buffer, context: context)
        case .end:
            self.receiveEnd(context: context)
        }
    }

    // MARK: requests

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let policy = self.environment.policies.current
        let server = policy.config.server
        self.generation &+= 1
        self.answeringHTTP10 = head.version.major == 1 && head.version.minor == 0
        let requestID = RequestID.choose(head.headers.first(name: "x-request-id"))
        self.current = RequestLogContext(
            requestID: requestID, client: ClientAddress.resolve(head.headers, peer: self.peerText, server), method: head.method.rawValue,
            path: RequestLogContext.pathForLog(head.uri), start: MonotonicClock.nanoseconds(), logged: false)

        let declaredLength: Int64?
        let chunked: Bool
        switch RequestFraming.read(head, maximumBody: server.maxRequestBody) {
        case .framed(let framing):
            declaredLength = framing.declaredLength
            chunked = framing.chunked
        case .refused(let refusal):
            // The bytes after a head whose framing is in doubt cannot start a request: the
            // connection closes after the answer.
            return self.refuse(refusal, requestID: requestID, keepAlive: false, context: context)
        }

        // The paths the gateway answers itself come before every route; the token endpoint is
        // decided here, before its body arrives. The target is normalized a second time only
        // when it could name one of these paths.
        if let endpoint = policy.config.tokenEndpoint, TokenExchange.mayName(head.uri, endpoint.path, policy.publishedKeySet != nil),
            case .success(let target) = RequestTarget.normalize(head.uri, mergeSlashes: server.mergeSlashes),
            let answer = policy.gatewayDecision(method: head.method.rawValue, path: target.path, host: head.authorityOrHost)
        {
            // The decision checks Host for every other request; these are answered before it.
            if let field = head.headers.first(name: "host"), !RequestTarget.isValidHost(field) {
                return self.refuse(Refusal(status: 400, detail: "Invalid Host header", reason: "bad_host"),
                                   requestID: requestID, keepAlive: head.isKeepAlive, context: context)
            }
            self.current.route = Policy.tokenEndpointRoute
            if let revocation = TokenExchange.revocation(answer), self.environment.tokenService != nil {
                self.state = .token(
                    TokenExchange(head: head, requestID: requestID, policy: policy, endpoint: endpoint, revocation: revocation))
                return
            }
            return self.answer(answer, requestID: requestID, keepAlive: head.isKeepAlive, context: context)
        }

        let facts = RequestFacts.received(head, policy: policy, peer: self.peerText, requestID: requestID)
        var pending = PendingRequest(
            head: head, declaredLength: declaredLength, chunked: chunked, requestID: requestID, generation: self.generation)
        switch DecisionRunner(environment: self.environment).run(facts, policy: policy, client: self.current.client, on: context.eventLoop) {
        case .decided(let decision):
            self.act(on: decision, pending, context: context)
        case .pending(let decision):
            // A password check or a key set fetch: reading stops until the decision is final,
            // and body parts that arrive meanwhile wait in `pending`.
            pending.waited = true
            self.state = .awaiting(pending)
            self.readPaused = true
            decision.assumeIsolated().whenComplete { [generation = self.generation] result in
                guard let context = self.context, case .awaiting(let pending) = self.state, pending.generation == generation else {
                    return
                }
                self.state = .idle
                switch result {
                case .success(let decision):
                    self.act(on: decision, pending, context: context)
                case .failure:
                    var refusal = Refusal(status: 500, detail: "Internal Server Error", reason: "credential_check_failed")
                    refusal.closesConnection = true
                    self.act(on: .refuse(refusal), pending, context: context)
                }
            }
        }
    }

    private func act(on decision: Decision, _ pending: PendingRequest, context: ChannelHandlerContext) {
        switch decision {
        case .refuse(let refusal):
            // After CONNECT the parser treats the connection as a tunnel: nothing after it can be read as HTTP.
            let keepAlive = pending.head.isKeepAlive && pending.head.method != .CONNECT && !refusal.closesConnection
            self.refuse(refusal, requestID: pending.requestID, keepAlive: keepAlive, context: context)
        case .forward(let plan):
            // Shadow mode: the refusal it carries is only logged; the request goes through.
            if let refusal = plan.shadowed { self.current.wouldDeny = (refusal.status, refusal.reason) }
            self.forward(
                pending.head, plan: plan, declaredLength: pending.declaredLength, chunked: pending.chunked,
                requestID: pending.requestID, context: context)
        case .verify:
            self.refuse(
                Refusal(status: 500, detail: "Internal Server Error", reason: "credential_loop"), requestID: pending.requestID,
                keepAlive: false, context: context)
        case .serve:
            self.answer(decision, requestID: pending.requestID, keepAlive: pending.head.isKeepAlive, context: context)
        }
        self.replay(pending, context: context)
    }

    /// Hands the body parts that arrived while the request waited to whatever handles it now,
    /// then lets reading go on (unless the upstream asked for a pause meanwhile).
    private func replay(_ pending: PendingRequest, context: ChannelHandlerContext) {
        let waited = pending.waited
        if waited { self.readPaused = false }
        for buffer in pending.buffered { self.receiveBody(buffer, context: context) }
        if pending.ended { self.receiveEnd(context: context) }
        if waited && !self.readPaused && self.readPending {
            self.readPending = false
            context.read()
        }
    }

    /// Sends the request head the decision computed, and streams the body after it.
    private func forward(
        _ head: HTTPRequestHead, plan: ForwardPlan, declaredLength: Int64?, chunked: Bool, requestID: String,
        context: ChannelHandlerContext
    ) {
        guard let upstream = plan.upstream else {
            // Only a route without upstream has none, and the decision never forwards to it.
            return self.refuse(Refusal.notFound, requestID: requestID, keepAlive: head.isKeepAlive, context: context)
        }
        let exchange = ForwardExchange(
            generation: self.generation, keepAlive: head.isKeepAlive, requestID: requestID, isHead: head.method == .HEAD,
            clientIsHTTP10: head.version.major == 1 && head.version.minor == 0)
        exchange.responseHeaders = plan.responseHeaders
        self.state = .forwarding(exchange)
        self.current.route = plan.routeName
        self.current.subject = plan.identity?.subject
        self.current.upstreamStart = MonotonicClock.nanoseconds()

        var lines = UpstreamHeaderLines(reservingBytes: 512)
        for (name, value) in plan.headers { lines.append(name: name, value: value) }

        let body: UpstreamRequest.Body
        if chunked {
            body = .streamed
        } else if let declaredLength, declaredLength > 0 || !head.method.usuallyWithoutBody {
            body = .length(declaredLength)
        } else {
            body = .none
        }
        var socketPath: String?
        if case .unixSocket(let path) = upstream.target { socketPath = path }
        let request = UpstreamRequest(
            url: plan.upstreamURL, method: plan.method, headers: lines, body: body, unixSocketPath: socketPath,
            connectTimeoutMilliseconds: upstream.connectTimeout, timeoutMilliseconds: upstream.timeout,
            caFile: upstream.tls?.caFile, clientCertFile: upstream.tls?.clientCertFile,
            clientKeyFile: upstream.tls?.clientKeyFile)
        // HTTP/1.0 clients never get a 1xx (RFC 9110 §10.1.1): they send the body regardless.
        if body != .none, head.version.minor >= 1,
            head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" })
        {
            context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        let bridge = UpstreamBridge(handler: self, eventLoop: context.eventLoop, generation: exchange.generation)
        exchange.transfer = self.environment.curl.multi(for: context.eventLoop).start(request, handler: bridge)
    }

    private func receiveBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        if case .token(var exchange) = self.state {
            let limit = min(TokenExchange.maximumRequestBytes, exchange.policy.config.server.maxRequestBody)
            if exchange.body.count + buffer.readableBytes > limit {
                exchange.tooLarge = true
            } else {
                exchange.body.append(contentsOf: buffer.readableBytesView)
            }
            self.state = .token(exchange)
            return
        }
        if case .awaiting(var pending) = self.state {
            pending.buffered.append(buffer)
            pending.bufferedBytes += buffer.readableBytes
            self.state = .awaiting(pending)
            return
        }
        guard case .forwarding(let exchange) = self.state, let transfer = exchange.transfer, !exchange.requestEnded else {
            return  // discarding, or the exchange already failed
        }
        exchange.requestBodyBytes += buffer.readableBytes
        if exchange.requestBodyBytes > self.environment.policies.current.config.server.maxRequestBody {
            // Not one byte past the limit reaches the upstream.
            transfer.cancel()
            exchange.transfer = nil
            if !exchange.responseHeadSent {
                self.state = .idle
                self.refuse(Refusal(status: 413, detail: "Request Entity Too Large", reason: "body_too_large"),
                            requestID: exchange.requestID, keepAlive: false, context: context)
            } else {
                context.close(promise: nil)
            }
            return
        }
        if !transfer.appendRequestBody(buffer) { self.readPaused = true }
    }

    private func receiveEnd(context: ChannelHandlerContext) {
        switch self.state {
        case .idle:
            break
        case .discarding(let keepAlive):
            self.state = .idle
            if keepAlive { self.deadlines.becameIdle() }
        case .awaiting(var pending):
            pending.ended = true
            self.state = .awaiting(pending)
        case .token(let exchange):
            self.answerToken(exchange, context: context)
        case .forwarding(let exchange):
            exchange.requestEnded = true
            exchange.transfer?.endRequestBody()
        }
    }

    private func answerToken(_ exchange: TokenExchange, context: ChannelHandlerContext) {
        guard let service = self.environment.tokenService else { return }
        self.state = .discarding(keepAlive: exchange.head.isKeepAlive)
        if exchange.tooLarge {
            return self.refuse(
                Refusal(status: 413, detail: "Request Entity Too Large", reason: "body_too_large"), requestID: exchange.requestID,
                keepAlive: false, context: context)
        }
        let answer = service.answer(
            policy: exchange.policy, endpoint: exchange.endpoint, revocation: exchange.revocation,
            contentType: exchange.head.headers.first(name: "content-type"),
            authorization: exchange.head.headers["authorization"], body: exchange.body, client: self.current.client,
            requestID: exchange.requestID,
            eventLoop: context.eventLoop)
        let generation = self.generation
        answer.assumeIsolated().whenComplete { result in
            guard generation == self.generation, let context = self.context else { return }
            let reply: TokenService.Answer
            switch result {
            case .success(let value): reply = value
            case .failure: reply = TokenService.failure(OAuthError.busy)
            }
            self.current.subject = reply.subject
            self.state = .idle
            self.writeRefusal(
                Refusal(status: reply.status, headers: reply.headers, body: reply.body, reason: reply.outcome),
                requestID: exchange.requestID, keepAlive: exchange.head.isKeepAlive,
                decision: reply.status == 200 ? "allow" : "deny", context: context)
        }
    }

    // MARK: upstream events (on this loop, via the bridge)

    func upstreamHead(_ head: UpstreamResponseHead, generation: Int) {
        guard let context = self.context, case .forwarding(let exchange) = self.state, exchange.generation == generation
        else { return }
        let response = ResponseHead.rewrite(
            head, requestID: exchange.requestID, adding: exchange.responseHeaders, clientIsHTTP10: exchange.clientIsHTTP10,
            isHead: exchange.isHead, keepAlive: &exchange.keepAlive)
        exchange.responseHeadSent = true
        self.current.status = head.status
        self.current.statusFromUpstream = true
        self.current.upstreamMilliseconds = MonotonicClock.milliseconds(since: self.current.upstreamStart)
        context.write(self.wrapOutboundOut(.head(response)), promise: nil)
        // Flushed at the end of the batch, with whatever body came along: a head whose body
        // comes later (server-sent events, long polls) must not wait for it, and a head larger
        // than the channel's write buffer would otherwise block the body behind it for good.
        self.unflushed = true
    }

    func upstreamBody(_ buffer: ByteBuffer, generation: Int) {
        guard let context = self.context, case .forwarding(let exchange) = self.state, exchange.generation == generation
        else { return }
        let count = buffer.readableBytes
        self.current.bytes += count
        // Flushed once the bridge's batch is handled: a small response's head, body and end go
        // out in one flush.
        context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        self.unflushed = true
        exchange.transfer?.responseBodyWritten(count, clientWritable: context.channel.isWritable)
    }

    /// The end of a batch of upstream events: flushes what they wrote.
    func upstreamBatchHandled() {
        guard self.unflushed else { return }
        self.unflushed = false
        self.context?.flush()
    }

    func upstreamWantsBody(generation: Int) {
        guard let context = self.context, case .forwarding(let exchange) = self.state, exchange.generation == generation
        else { return }
        self.resumeReading(context: context)
    }

    func upstreamFinished(_ error: UpstreamError?, generation: Int) {
        guard let context = self.context, case .forwarding(let exchange) = self.state, exchange.generation == generation
        else { return }
        exchange.transfer = nil
        // Whether the gateway was waiting for the client's body (rather than holding it back
        // because the upstream was behind) when the exchange ended.
        let waitingForClient = !exchange.requestEnded && !self.readPaused
        self.resumeReading(context: context)
        if let error {
            if exchange.responseHeadSent {
                // The head is out: the client can only learn of the failure by the connection closing.
                self.environment.metrics.upstreamError(kind: error.kind.rawValue)
                self.logRequest(decision: "allow", reason: "upstream_failed_mid_body")
                self.state = .idle
                self.upstreamBatchHandled()  // what did arrive goes out before the close
                context.close(promise: nil)
                return
            }
            let refusal: Refusal
            switch error.kind {
            case .timeout where waitingForClient:
                // The client stopped sending its body: its fault, not the upstream's (nginx's
                // client_body_timeout answers the same way).
                self.state = .discarding(keepAlive: false)
                self.current.upstreamMilliseconds = MonotonicClock.milliseconds(since: self.current.upstreamStart)
                return self.writeRefusal(
                    Refusal(status: 408, detail: "Request Timeout", reason: "client_body_timeout"), requestID: exchange.requestID,
                    keepAlive: false, decision: "allow", context: context)
            case .timeout: refusal = Refusal(status: 504, detail: "Gateway Timeout", reason: "upstream_timeout")
            case .cancelled:
                self.logRequest(decision: "allow", reason: "cancelled")
                return
            case .badGateway, .requestBody: refusal = Refusal(status: 502, detail: "Bad Gateway", reason: "upstream_error")
            }
            self.environment.metrics.upstreamError(kind: error.kind.rawValue)
            self.environment.logger.warning(
                "upstream failed", metadata: ["request_id": "\(exchange.requestID)", "error": "\(error)"])
            let keepAlive = exchange.keepAlive && exchange.requestEnded
            self.state = exchange.requestEnded ? .idle : .discarding(keepAlive: false)
            self.current.upstreamMilliseconds = MonotonicClock.milliseconds(since: self.current.upstreamStart)
            self.writeRefusal(refusal, requestID: exchange.requestID, keepAlive: keepAlive, decision: "allow", context: context)
            return
        }
        // A response may end before the client finished its body; the rest cannot be framed
        // for anyone, so the connection closes after the answer.
        let keepAlive = exchange.keepAlive && exchange.requestEnded && !self.environment.isDraining
        self.state = .idle
        self.logRequest(decision: "allow", reason: nil)
        self.unflushed = false
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [deadlines = self.deadlines] _ in
            if keepAlive {
                deadlines.becameIdle()
            } else {
                context.close(promise: nil)
            }
        }
    }

    // MARK: refusals

    /// Answers a request for one of the gateway's own paths that is not a token request it can
    /// take: a published document, a 405, or a 503 when a reloaded configuration added a token
    /// endpoint this process did not start with.
    private func answer(_ decision: Decision, requestID: String, keepAlive: Bool, context: ChannelHandlerContext) {
        switch decision {
        case .serve(.document(let body, let headers)):
            var document = Refusal(status: 200, headers: headers, body: body, reason: "discovery")
            document.routeName = Policy.tokenEndpointRoute
            self.refuse(document, requestID: requestID, keepAlive: keepAlive, context: context)
        case .serve(.preflight(let route, let headers)):
            var preflight = Refusal(status: 204, headers: headers, body: [], reason: "cors_preflight")
            preflight.routeName = route
            self.refuse(preflight, requestID: requestID, keepAlive: keepAlive, context: context)
        case .serve(.tokenEndpoint), .serve(.tokenRevocation):
            var unavailable = Refusal(
                status: 503, detail: "The token endpoint starts with the gateway: restart to enable it",
                reason: "token_endpoint_unavailable")
            unavailable.routeName = Policy.tokenEndpointRoute
            self.refuse(unavailable, requestID: requestID, keepAlive: keepAlive, context: context)
        case .refuse(let refusal):
            self.refuse(refusal, requestID: requestID, keepAlive: keepAlive, context: context)
        case .forward, .verify:
            self.refuse(Refusal(status: 500, detail: "Internal Server Error", reason: "not_an_answer"),
                        requestID: requestID, keepAlive: false, context: context)
        }
    }

    private func refuse(_ refusal: Refusal, requestID: String, keepAlive: Bool, context: ChannelHandlerContext) {
        self.state = .discarding(keepAlive: keepAlive)
        // The gateway's own documents (JWKS, metadata) go out this way too, and are not refusals.
        self.writeRefusal(
            refusal, requestID: requestID, keepAlive: keepAlive, decision: refusal.status < 400 ? "allow" : "deny", context: context)
    }

    private func writeRefusal(
        _ refusal: Refusal, requestID: String, keepAlive: Bool, decision: String, context: ChannelHandlerContext
    ) {
        self.current.status = refusal.status
        // NIO sends no body after the head of an answer to HEAD, nor for CONNECT.
        self.current.bytes = self.current.method == "HEAD" || self.current.method == "CONNECT" ? 0 : refusal.body.count
        if let route = refusal.routeName { self.current.route = route }
        self.logRequest(decision: decision, reason: refusal.reason)
        let keepAlive = keepAlive && !self.environment.isDraining
        let head = ResponseHead.refusal(refusal, requestID: requestID, keepAlive: keepAlive, clientIsHTTP10: self.answeringHTTP10)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !refusal.body.isEmpty {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: refusal.body)))), promise: nil)
        }
        let discarding: Bool
        if case .discarding = self.state { discarding = true } else { discarding = false }
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
        if keepAlive && !discarding { self.deadlines.becameIdle() }
    }

    private func resumeReading(context: ChannelHandlerContext) {
        guard self.readPaused else { return }
        self.readPaused = false
        if self.readPending {
            self.readPending = false
            context.read()
        }
    }

    // MARK: helpers

    private func logRequest(decision: String, reason: String?) {
        self.current.finish(decision: decision, reason: reason, environment: self.environment, series: &self.series)
    }
}
