import NIOCore
import NIOHTTP1
import PortcullisCore

/// The decision service (contract §11) for one connection of an edge proxy: decides the
/// original request each decision request describes, with the same decision the public
/// listener makes, and answers with a status and headers only. Nothing is forwarded.
///
/// Confined to the channel's event loop. With a ``RequestSequencer`` ahead of it, one request
/// is answered before the next one reaches it.
final class DecisionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let environment: GatewayEnvironment
    private let deadlines: ConnectionDeadlines
    private var context: ChannelHandlerContext?
    private var peer = ""
    private var head: HTTPRequestHead?
    /// Moves on with each request and when the connection closes, so that a decision that
    /// completes late is not answered on a connection that has gone on or gone away.
    private var generation = 0
    private var current = RequestLogContext()
    private var series = RequestSeriesCache()

    init(environment: GatewayEnvironment, deadlines: ConnectionDeadlines) {
        self.environment = environment
        self.deadlines = deadlines
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.peer = context.channel.remoteAddress?.ipAddress ?? ""
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.generation &+= 1
        // A decision under way when the proxy went away: logged once, with no status.
        if let head = self.head {
            self.current.requestID = RequestID.choose(head.headers.first(name: "x-request-id"))
            self.current.target = head.uri
        }
        self.finish(decision: .deny, reason: .clientClosed)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.deadlines.headReceived()
            self.head = head
            self.generation &+= 1
            // The id and the path come from the decision request's description (`decide`), or
            // from this head if the proxy goes away first (`channelInactive`).
            self.current = RequestLogContext(
                client: self.peer, method: head.method.rawValue, start: MonotonicClock.nanoseconds(), logged: false,
                decisionService: true)
        case .body:
            break  // the original request's body is not needed for a decision
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.decide(head, context: context)
        }
    }

    private func decide(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let policy = self.environment.policies.current
        // NIO sends no body in the answer to a HEAD decision request.
        let sendsBody = head.method != .HEAD
        guard let decisions = policy.config.decisions, decisions.trusts(self.peer) else {
            self.current.requestID = RequestID.choose(head.headers.first(name: "x-request-id"))
            self.current.target = head.uri
            // A reload removed the service (it stays bound until a restart, and decides
            // nothing), or the peer is no trusted proxy.
            let answer: DecisionServiceAnswer =
                policy.config.decisions == nil ? .forbidden(reason: .decisionServiceOff) : .forbidden(reason: .untrustedPeer)
            return self.write(answer, keepAlive: head.isKeepAlive, sendsBody: sendsBody, context: context)
        }
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(head.headers.count)
        for field in head.headers { fields.append(field) }
        let facts = RequestFacts.decisionRequest(
            method: head.method.rawValue, target: head.uri, fields: consume fields, peer: self.peer, decisions: decisions,
            policy: policy)
        let requestID = facts.requestID
        let client = facts.peer
        self.current.requestID = requestID
        self.current.client = client
        if !facts.method.isEmpty { self.current.method = facts.method }
        self.current.target = facts.rawTarget.isEmpty ? head.uri : facts.rawTarget
        let keepAlive = head.isKeepAlive
        switch DecisionRunner(environment: self.environment).run(consume facts, policy: policy, client: client, on: context.eventLoop) {
        case .decided(let decision):
            self.write(
                policy.decisionServiceAnswer(decision, requestID: requestID), keepAlive: keepAlive, sendsBody: sendsBody,
                context: context)
        case .pending(let decision):
            decision.assumeIsolated().whenComplete { [generation = self.generation] result in
                guard generation == self.generation, let context = self.context else { return }
                var final: Decision
                switch result {
                case .success(let decision): final = decision
                case .failure: final = .refuse(Refusal(status: 500, detail: "Internal Server Error", reason: .credentialCheckFailed))
                }
                self.write(
                    policy.decisionServiceAnswer(final, requestID: requestID), keepAlive: keepAlive, sendsBody: sendsBody,
                    context: context)
            }
        }
    }

    private func write(
        _ answer: DecisionServiceAnswer, keepAlive requested: Bool, sendsBody: Bool, context: ChannelHandlerContext
    ) {
        self.current.route = answer.routeName
        self.current.subject = answer.subject
        self.current.bytes = sendsBody ? answer.body.count : 0
        if answer.outcome == .wouldDeny, let reason = answer.reason {
            self.current.wouldDeny = (answer.decidedStatus, reason)
            self.current.status = answer.status
        } else {
            self.current.status = answer.decidedStatus
            if answer.status != answer.decidedStatus { self.current.sentStatus = answer.status }
        }
        self.finish(decision: answer.outcome == .wouldDeny ? .allow : answer.outcome, reason: answer.reason)

        let keepAlive = requested && !self.environment.isDraining
        // The fields as one array, handed to NIO whole: the names are ours or the
        // configuration's, already checked, and NIO's outbound validator checks them again.
        var fields: [(String, String)] = []
        fields.reserveCapacity(answer.headers.count + 3)
        for (name, value) in answer.headers { fields.append((name, value)) }
        if !answer.body.isEmpty { fields.append(("Content-Type", "application/json")) }
        fields.append(("Content-Length", String(answer.body.count)))
        if !keepAlive { fields.append(("Connection", "close")) }
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: HTTPHeaders(fields))
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !answer.body.isEmpty {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        }
        if keepAlive {
            // No promise to wait on: the connection is idle once the answer is handed over.
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            self.deadlines.becameIdle()
        } else {
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func finish(decision: DecisionLabel, reason: Reason?) {
        self.current.finish(decision: decision, reason: reason, environment: self.environment, series: &self.series)
    }
}
