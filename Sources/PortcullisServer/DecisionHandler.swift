import NIOCore
import NIOHTTP1
import PortcullisCore

/// The decision service (contract §11) for one connection of an edge proxy: decides the
/// original request each decision request describes, with the same decision the public
/// listener makes, and answers with a status and headers only. Nothing is forwarded.
///
/// It writes each answer whole, as bytes (``AnswerBytes``), in one write: there is no
/// response encoder after it. The ``RequestSequencer`` ahead of it hands it one request at a
/// time, also while a decision waits on work off the loop (a password check, a key set fetch).
/// A parse error is answered as `serve` would answer it, sent as 403 (contract §11), and ends
/// the connection.
///
/// Confined to the channel's event loop.
final class DecisionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = IOData

    private let environment: GatewayEnvironment
    private let deadlines: ConnectionDeadlines
    private var context: ChannelHandlerContext?
    private var peer = ""
    /// The request whose head came and whose end has not, with the time its head came.
    private var receiving: (head: HTTPRequestHead, start: UInt64)?
    /// A decision waits on work off the loop.
    private var deciding = false
    /// The last answer is written: the connection closes after it.
    private var closing = false
    /// Moves on with each decision and when the connection closes, so that a decision that
    /// completes late is not answered on a connection that has gone away.
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
        // A decision under way when the proxy went away, or a request it did not finish
        // sending: logged once, with no status.
        if !self.deciding, let (head, start) = self.receiving {
            self.current = self.logContext(head, start: start)
            self.current.requestID = RequestID.choose(head.headers.first(name: "x-request-id"))
            self.current.target = head.uri
        }
        self.finish(decision: .deny, reason: .clientClosed)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closing else { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.deadlines.headReceived()
            self.receiving = (head, MonotonicClock.nanoseconds())
        case .body:
            break  // the original request's body is not needed for a decision
        case .end:
            guard let (head, start) = self.receiving else { return }
            self.receiving = nil
            self.decide(head, start: start, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder can report the end of a cut-short request after the connection closed.
        guard context.channel.isActive, !self.closing else { return }
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        self.answer(parserError, context: context)
    }

    private func logContext(_ head: HTTPRequestHead, start: UInt64) -> RequestLogContext {
        RequestLogContext(
            client: self.peer, method: head.method.rawValue, start: start, logged: false, decisionService: true)
    }

    /// A request the decoder could not read: what `serve` answers (400, or 431 for too many
    /// header bytes), sent as 403, and the connection ends.
    private func answer(_ error: HTTPParserError, context: ChannelHandlerContext) {
        let head = self.receiving?.head
        self.receiving = nil
        self.current = RequestLogContext(
            client: self.peer, method: head?.method.rawValue ?? "", start: MonotonicClock.nanoseconds(), logged: false,
            decisionService: true)
        let requestID = RequestID.choose(head?.headers.first(name: "x-request-id"))
        self.current.requestID = requestID
        self.current.target = head?.uri ?? ""
        let policy = self.environment.policies.current
        var answer = Self.forbidden(policy)
        if let decisions = policy.config.decisions, decisions.trusts(self.peer) {
            let refusal =
                error == .headerOverflow
                ? Refusal(status: 431, detail: "Request Header Fields Too Large", reason: .headersTooLarge)
                : Refusal(status: 400, detail: "Bad Request", reason: .badFraming)
            answer = policy.decisionServiceAnswer(.refuse(refusal), requestID: requestID)
        }
        self.write(answer, keepAlive: false, isHTTP10: false, sendsBody: head?.method != .HEAD, context: context)
    }

    /// The answer to a peer that may not ask, or to any peer once a reload removed the
    /// service (it stays bound until a restart, and decides nothing).
    private static func forbidden(_ policy: Policy) -> DecisionServiceAnswer {
        .forbidden(reason: policy.config.decisions == nil ? .decisionServiceOff : .untrustedPeer)
    }

    private func decide(_ head: HTTPRequestHead, start: UInt64, context: ChannelHandlerContext) {
        self.generation &+= 1
        self.current = self.logContext(head, start: start)
        let policy = self.environment.policies.current
        // The answer to a HEAD decision request carries no body.
        let sendsBody = head.method != .HEAD
        let keepAlive = head.isKeepAlive
        let isHTTP10 = head.version.major == 1 && head.version.minor == 0
        guard let decisions = policy.config.decisions, decisions.trusts(self.peer) else {
            self.current.requestID = RequestID.choose(head.headers.first(name: "x-request-id"))
            self.current.target = head.uri
            return self.write(Self.forbidden(policy), keepAlive: keepAlive, isHTTP10: isHTTP10, sendsBody: sendsBody, context: context)
        }
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(head.headers.count)
        for field in head.headers { fields.append(field) }
        let facts = RequestFacts.decisionRequest(
            method: head.method.rawValue, target: head.uri, fields: consume fields, peer: self.peer,
            decisions: decisions, policy: policy)
        let requestID = facts.requestID
        let client = facts.peer
        self.current.requestID = requestID
        self.current.client = client
        if !facts.method.isEmpty { self.current.method = facts.method }
        self.current.target = facts.rawTarget.isEmpty ? head.uri : facts.rawTarget
        switch DecisionRunner(environment: self.environment).run(consume facts, policy: policy, client: client, on: context.eventLoop) {
        case .decided(let decision):
            self.write(
                policy.decisionServiceAnswer(decision, requestID: requestID), keepAlive: keepAlive, isHTTP10: isHTTP10,
                sendsBody: sendsBody, context: context)
        case .pending(let decision):
            self.deciding = true
            decision.assumeIsolated().whenComplete { [generation = self.generation] result in
                guard generation == self.generation, let context = self.context else { return }
                self.deciding = false
                var final: Decision
                switch result {
                case .success(let decision): final = decision
                case .failure: final = .refuse(Refusal(status: 500, detail: "Internal Server Error", reason: .credentialCheckFailed))
                }
                self.write(
                    policy.decisionServiceAnswer(final, requestID: requestID), keepAlive: keepAlive, isHTTP10: isHTTP10,
                    sendsBody: sendsBody, context: context)
            }
        }
    }

    private func write(
        _ answer: DecisionServiceAnswer, keepAlive requested: Bool, isHTTP10: Bool, sendsBody: Bool,
        context: ChannelHandlerContext
    ) {
        var answer = answer
        let keepAlive = requested && !self.environment.isDraining
        var buffer = context.channel.allocator.buffer(capacity: 256 + (sendsBody ? answer.body.count : 0))
        if !Self.render(answer, keepAlive: keepAlive, isHTTP10: isHTTP10, sendsBody: sendsBody, into: &buffer) {
            // Never expected: identities and refusals are checked before they become fields.
            // Refused rather than sent without a field an edge proxy relies on.
            answer = self.environment.policies.current.decisionServiceAnswer(
                .refuse(Refusal(status: 500, detail: "Internal Server Error", reason: .error)), requestID: self.current.requestID)
            _ = Self.render(answer, keepAlive: keepAlive, isHTTP10: isHTTP10, sendsBody: sendsBody, into: &buffer)
        }

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

        if keepAlive {
            // No promise to wait on: the connection is idle once the answer is handed over.
            context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
            self.deadlines.becameIdle()
        } else {
            self.closing = true
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// The answer with its framing fields; false when a field cannot be sent (``AnswerBytes``).
    private static func render(
        _ answer: DecisionServiceAnswer, keepAlive: Bool, isHTTP10: Bool, sendsBody: Bool, into buffer: inout ByteBuffer
    ) -> Bool {
        var framing: [(name: String, value: String)] = []
        framing.reserveCapacity(3)
        if !answer.body.isEmpty { framing.append(("Content-Type", "application/json")) }
        framing.append(("Content-Length", String(answer.body.count)))
        if !keepAlive {
            framing.append(("Connection", "close"))
        } else if isHTTP10 {
            framing.append(("Connection", "keep-alive"))  // HTTP/1.0 closes by default
        }
        return AnswerBytes.write(
            status: answer.status, fields: answer.headers, framing: framing, body: sendsBody ? answer.body : [], into: &buffer)
    }

    private func finish(decision: DecisionLabel, reason: Reason?) {
        self.current.finish(decision: decision, reason: reason, environment: self.environment, series: &self.series)
    }
}
