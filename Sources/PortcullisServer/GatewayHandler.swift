import Logging
import NIOCore
import NIOHTTP1
import PortcullisCore
import PortcullisUpstream

/// Runs the gateway for one client connection: decides each request, and carries out what the
/// connection's ``ConnectionStateMachine`` says to do with it (answer it, stream it through
/// libcurl in both directions, hold reading back, close).
///
/// Confined to the channel's event loop. Upstream events arrive on the curl thread and are
/// handed over through ``UpstreamBridge``, which re-enters this handler on its loop; the state
/// machine drops events of an exchange that is no longer current.
final class GatewayHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Machine = ConnectionStateMachine<TokenExchange>

    private let environment: GatewayEnvironment
    private let deadlines: ConnectionDeadlines
    private var machine = Machine()
    /// The upstream exchange of the current request, while it runs.
    private var transfer: UpstreamTransfer?
    /// Response bytes written for the current upstream batch and not yet flushed.
    private var unflushed = false
    private var context: ChannelHandlerContext?
    /// The curl thread of this connection's event loop: its exchanges stay on it.
    private var curl: CurlMulti?
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
        self.curl = self.environment.curl.multi(for: context.eventLoop)
        if let address = context.channel.remoteAddress { self.peerText = address.ipAddress ?? "unknown" }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let close = self.machine.channelClosed() {
            if close.cancelUpstream { self.transfer?.cancel() }
            self.transfer = nil
            if let log = close.log { self.logRequest(decision: log.decision, reason: log.reason) }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parser error can arrive after the connection closed: closing from inside the decoder's
        // own delivery (a refusal that ends the connection) makes it finish afterwards, and the
        // end of a body cut short is no request of its own.
        guard context.channel.isActive else { return }
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        self.execute(self.machine.parseFailed(parserError), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.transfer?.clientWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// Holds back reads while a decision waits or the upstream is behind on the request body.
    func read(context: ChannelHandlerContext) {
        if self.machine.readRequested() { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.deadlines.headReceived()
            self.receiveHead(head, context: context)
        case .body(let buffer):
            self.execute(self.machine.receiveBody(buffer), context: context)
        case .end:
            self.execute(self.machine.receiveEnd(), context: context)
        }
    }

    // MARK: requests

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let policy = self.environment.policies.current
        let server = policy.config.server
        let requestID = RequestID.choose(head.headers.first(name: "x-request-id"))
        let next = self.machine.receivedHead(head, requestID: requestID, maximumBody: server.maxRequestBody)
        if case .ignore = next { return }
        self.current = RequestLogContext(
            requestID: requestID, client: ClientAddress.resolve(head.headers, peer: self.peerText, server),
            method: head.method.rawValue, target: head.uri, start: MonotonicClock.nanoseconds(), logged: false)
        if case .answer(let action) = next { return self.execute(action, context: context) }

        // The paths the gateway answers itself come before every route; the token endpoint is
        // decided here, before its body arrives. The target is normalized a second time only
        // when it could name one of these paths.
        if let endpoint = policy.config.tokenEndpoint, TokenExchange.mayName(head.uri, endpoint.path, policy.publishedKeySet != nil),
            case .success(let target) = RequestTarget.normalize(head.uri, mergeSlashes: server.mergeSlashes),
            let answer = policy.gatewayDecision(method: head.method.rawValue, path: target.path, host: head.authorityOrHost)
        {
            // The decision checks Host for every other request; these are answered before it.
            if let field = head.headers.first(name: "host"), !RequestTarget.isValidHost(field) {
                return self.execute(
                    self.machine.answer(Refusal(status: 400, detail: "Invalid Host header", reason: .badHost)), context: context)
            }
            self.current.route = Policy.tokenEndpointRoute
            if let revocation = TokenExchange.revocation(answer), self.environment.tokenService != nil {
                let limit = min(TokenExchange.maximumRequestBytes, server.maxRequestBody)
                return self.machine.collectTokenBody(
                    TokenExchange(head: head, requestID: requestID, policy: policy, endpoint: endpoint, revocation: revocation),
                    limit: limit)
            }
            return self.act(on: answer, context: context)
        }

        let facts = RequestFacts.received(head, policy: policy, peer: self.peerText, requestID: requestID)
        switch DecisionRunner(environment: self.environment).run(facts, policy: policy, client: self.current.client, on: context.eventLoop) {
        case .decided(let decision):
            self.act(on: decision, context: context)
        case .pending(let decision):
            // A password check or a key set fetch: reading stops until the decision is final,
            // and body parts that arrive meanwhile wait in the state machine.
            self.machine.awaitDecision()
            decision.assumeIsolated().whenComplete { [generation = self.machine.generation] result in
                guard let context = self.context, let waiting = self.machine.decisionArrived(generation: generation) else { return }
                switch result {
                case .success(let decision):
                    self.act(on: decision, context: context)
                case .failure:
                    var refusal = Refusal(status: 500, detail: "Internal Server Error", reason: .credentialCheckFailed)
                    refusal.closesConnection = true
                    self.act(on: .refuse(refusal), context: context)
                }
                // What arrived meanwhile goes to whatever handles the request now.
                for buffer in waiting.buffered { self.execute(self.machine.receiveBody(buffer), context: context) }
                if waiting.ended { self.execute(self.machine.receiveEnd(), context: context) }
                self.execute(self.machine.waitOver(), context: context)
            }
        }
    }

    private func act(on decision: Decision, context: ChannelHandlerContext) {
        let refusal: Refusal
        switch decision {
        case .forward(let plan):
            // Shadow mode: the refusal it carries is only logged; the request goes through.
            if let refusal = plan.shadowed { self.current.wouldDeny = (refusal.status, refusal.reason) }
            return self.forward(plan, context: context)
        case .refuse(let decided):
            refusal = decided
        case .serve(.document(let body, let headers)):
            var document = Refusal(status: 200, headers: headers, body: body, reason: .discovery)
            document.routeName = Policy.tokenEndpointRoute
            refusal = document
        case .serve(.preflight(let route, let headers)):
            var preflight = Refusal(status: 204, headers: headers, body: [], reason: .corsPreflight)
            preflight.routeName = route
            refusal = preflight
        case .serve(.tokenEndpoint), .serve(.tokenRevocation):
            // A reloaded configuration added a token endpoint this process did not start with.
            var unavailable = Refusal(
                status: 503, detail: "The token endpoint starts with the gateway: restart to enable it",
                reason: .tokenEndpointUnavailable)
            unavailable.routeName = Policy.tokenEndpointRoute
            refusal = unavailable
        case .verify:
            var loop = Refusal(status: 500, detail: "Internal Server Error", reason: .credentialLoop)
            loop.closesConnection = true
            refusal = loop
        }
        self.execute(self.machine.answer(refusal), context: context)
    }

    /// Sends the request head the decision computed, and streams the body after it.
    private func forward(_ plan: ForwardPlan, context: ChannelHandlerContext) {
        guard let upstream = plan.upstream else {
            // Only a route without upstream has none, and the decision never forwards to it.
            return self.execute(self.machine.answer(Refusal.notFound), context: context)
        }
        self.current.route = plan.routeName
        self.current.subject = plan.identity?.subject
        self.current.upstreamStart = MonotonicClock.nanoseconds()
        let start = self.machine.forward(responseHeaders: plan.responseHeaders)

        let request = UpstreamRequest(plan, upstream: upstream, body: start.body)
        if start.sendContinue {
            context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        let bridge = UpstreamBridge(handler: self, eventLoop: context.eventLoop, generation: self.machine.generation)
        let curl = self.curl ?? self.environment.curl.multi(for: context.eventLoop)
        self.transfer = curl.start(request, handler: bridge)
    }

    // MARK: upstream events (on this loop, via the bridge)

    func upstreamHead(_ head: UpstreamResponseHead, generation: Int) {
        guard let context = self.context else { return }
        self.execute(self.machine.upstreamHead(head, generation: generation), context: context)
    }

    func upstreamBody(_ buffer: ByteBuffer, generation: Int) {
        guard let context = self.context else { return }
        self.execute(self.machine.upstreamBody(buffer, generation: generation), context: context)
    }

    func upstreamWantsBody(generation: Int) {
        guard let context = self.context else { return }
        self.execute(self.machine.upstreamWantsBody(generation: generation), context: context)
    }

    func upstreamFinished(_ error: UpstreamError?, generation: Int) {
        guard let context = self.context else { return }
        self.execute(self.machine.upstreamFinished(error, generation: generation), context: context)
    }

    /// The end of a batch of upstream events: flushes what they wrote.
    func upstreamBatchHandled() {
        guard self.unflushed else { return }
        self.unflushed = false
        self.context?.flush()
    }

    // MARK: actions

    private func execute(_ action: Machine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .read:
            context.read()
        case .sendBody(let buffer):
            if let transfer = self.transfer, !transfer.appendRequestBody(buffer) { self.machine.upstreamBodyFull() }
        case .endUpstreamBody:
            self.transfer?.endRequestBody()
        case .writeHead(let head):
            self.current.status = Int(head.status.code)
            self.current.statusFromUpstream = true
            self.current.upstreamMilliseconds = MonotonicClock.milliseconds(since: self.current.upstreamStart)
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            // Flushed at the end of the batch, with whatever body came along: a head whose body
            // comes later (server-sent events, long polls) must not wait for it, and a head larger
            // than the channel's write buffer would otherwise block the body behind it for good.
            self.unflushed = true
        case .writeBody(let buffer):
            let count = buffer.readableBytes
            self.current.bytes += count
            // Flushed once the bridge's batch is handled: a small response's head, body and end go
            // out in one flush.
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            self.unflushed = true
            self.transfer?.responseBodyWritten(count, clientWritable: context.channel.isWritable)
        case .finishResponse(let keepAlive, let read):
            self.transfer = nil
            if read { context.read() }
            self.logRequest(decision: .allow, reason: nil)
            self.unflushed = false
            let keepAlive = keepAlive && !self.environment.isDraining
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [deadlines = self.deadlines] _ in
                if keepAlive {
                    deadlines.becameIdle()
                } else {
                    context.close(promise: nil)
                }
            }
        case .answer(let answer):
            self.write(answer, context: context)
        case .answerToken(let exchange, let body):
            self.answerToken(exchange, body: body, context: context)
        case .close(let close):
            if close.cancelUpstream { self.transfer?.cancel() }
            self.transfer = nil
            if let kind = close.upstreamFailure { self.environment.metrics.upstreamError(kind: kind.rawValue) }
            if let log = close.log { self.logRequest(decision: log.decision, reason: log.reason) }
            if close.flush { self.upstreamBatchHandled() }  // what did arrive goes out before the close
            context.close(promise: nil)
        case .becameIdle:
            self.deadlines.becameIdle()
        }
    }

    private func answerToken(_ exchange: TokenExchange, body: [UInt8], context: ChannelHandlerContext) {
        guard let service = self.environment.tokenService else { return }
        let answer = service.answer(
            policy: exchange.policy, endpoint: exchange.endpoint, revocation: exchange.revocation,
            contentType: exchange.head.headers.first(name: "content-type"),
            authorization: exchange.head.headers["authorization"], body: body, client: self.current.client,
            requestID: exchange.requestID, eventLoop: context.eventLoop)
        answer.assumeIsolated().whenComplete { [generation = self.machine.generation] result in
            guard let context = self.context else { return }
            let reply: TokenService.Answer
            switch result {
            case .success(let value): reply = value
            case .failure: reply = TokenService.failure(OAuthError.busy)
            }
            let action = self.machine.tokenAnswered(
                generation: generation, Refusal(status: reply.status, headers: reply.headers, body: reply.body, reason: reply.outcome),
                decision: reply.status == 200 ? .allow : .deny)
            if case .answer = action { self.current.subject = reply.subject }
            self.execute(action, context: context)
        }
    }

    /// Writes an answer of the gateway's own, then keeps the connection or closes it.
    private func write(_ answer: Machine.Answer, context: ChannelHandlerContext) {
        if answer.cancelUpstream { self.transfer?.cancel() }
        if answer.cancelUpstream || answer.endsUpstream { self.transfer = nil }
        if answer.read { context.read() }
        if answer.startsRequest {
            self.current = RequestLogContext(
                requestID: RequestID.next(), client: self.peerText, start: MonotonicClock.nanoseconds(), logged: false)
        }
        if let failure = answer.upstreamFailure {
            self.environment.metrics.upstreamError(kind: failure.kind.rawValue)
            self.environment.logger.warning(
                "upstream failed", metadata: ["request_id": "\(self.current.requestID)", "error": "\(failure)"])
        }
        if answer.endsUpstream { self.current.upstreamMilliseconds = MonotonicClock.milliseconds(since: self.current.upstreamStart) }
        let refusal = answer.refusal
        self.current.status = refusal.status
        // NIO sends no body after the head of an answer to HEAD, nor for CONNECT.
        self.current.bytes = self.current.method == "HEAD" || self.current.method == "CONNECT" ? 0 : refusal.body.count
        if let route = refusal.routeName { self.current.route = route }
        self.logRequest(decision: answer.decision, reason: refusal.reason)

        let keepAlive = answer.keepAlive && !self.environment.isDraining
        let head = ResponseHead.refusal(refusal, requestID: self.current.requestID, keepAlive: keepAlive, clientIsHTTP10: answer.isHTTP10)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !refusal.body.isEmpty {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: refusal.body)))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            if answer.idleAfter { self.deadlines.becameIdle() }
        } else {
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func logRequest(decision: DecisionLabel, reason: Reason?) {
        self.current.finish(decision: decision, reason: reason, environment: self.environment, series: &self.series)
    }
}
