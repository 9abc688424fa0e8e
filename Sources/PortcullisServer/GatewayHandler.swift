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

    /// One forwarded request.
    private final class Exchange {
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

        init(generation: Int, keepAlive: Bool, requestID: String, isHead: Bool, clientIsHTTP10: Bool) {
            self.generation = generation
            self.keepAlive = keepAlive
            self.requestID = requestID
            self.isHead = isHead
            self.clientIsHTTP10 = clientIsHTTP10
        }
    }

    private enum State {
        case idle
        /// A refusal was sent; the rest of the request body is read and dropped.
        case discarding(keepAlive: Bool)
        case forwarding(Exchange)
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
    private var peer: [UInt8]?
    private var peerText = ""
    /// What the access log line of the current request needs.
    private var current = RequestLogContext()
    private var series = RequestSeriesCache()

    struct RequestLogContext {
        var requestID = ""
        /// The client's address: the peer's, or from a trusted proxy's `X-Forwarded-For`.
        var client = ""
        var method = ""
        var path = ""
        var start: UInt64 = 0
        var route: String?
        var subject: String?
        var upstreamStart: UInt64 = 0
        var upstreamMilliseconds: Double?
        var status = 0
        /// `status` is the upstream's (not an answer of the gateway's own).
        var statusFromUpstream = false
        var bytes = 0
        var logged = true
        /// Shadow mode: the status and reason of the refusal that was not enforced.
        var wouldDeny: (status: Int, reason: String)?
    }

    init(environment: GatewayEnvironment, deadlines: ConnectionDeadlines) {
        self.environment = environment
        self.deadlines = deadlines
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.channel.remoteAddress {
            self.peerText = address.ipAddress ?? "unknown"
            self.peer = self.peerText.isEmpty ? nil : IPAddressBytes.parse(self.peerText)
        }
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
                    requestID: RequestIDs.next(), client: self.peerText, start: MonotonicClock.nanoseconds(), logged: false)
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
        let requestID = Self.requestID(head.headers)
        self.current = RequestLogContext(
            requestID: requestID, client: self.clientAddress(head.headers, server), method: head.method.rawValue,
            path: Self.pathForLog(head.uri), start: MonotonicClock.nanoseconds(), logged: false)

        // NIO bounds the bytes of names and values, not how many fields there are: tens of
        // thousands of tiny fields would each be copied and sent upstream.
        if head.headers.count > Self.maximumHeaderFields {
            return self.refuse(
                Refusal(status: 431, detail: "Request Header Fields Too Large", reason: "headers_too_large"),
                requestID: requestID, keepAlive: false, context: context)
        }
        // One pass finds the Host fields and whether the framing headers are there at all.
        var hosts = 0
        var hasContentLength = false
        var hasTransferEncoding = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where name.equalsIgnoringASCIICase("host"): hosts += RequestFacts.listElementCount(value)
            case 14 where name.equalsIgnoringASCIICase("content-length"): hasContentLength = true
            case 17 where name.equalsIgnoringASCIICase("transfer-encoding"): hasTransferEncoding = true
            default: break
            }
        }
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (routes may match on it).
        if hosts > 1 || (hosts == 0 && head.version == .http1_1) {
            return self.refuse(
                Refusal(status: 400, detail: hosts > 1 ? "More than one Host header" : "Missing Host header", reason: "bad_host"),
                requestID: requestID, keepAlive: false, context: context)
        }

        // Framing checks the HTTP decoder leaves to us.
        let lengths = hasContentLength ? head.headers[canonicalForm: "content-length"] : []
        var declaredLength: Int64?
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), let value = Int64(first), value >= 0 else {
                return self.refuse(Refusal(status: 400, detail: "Invalid Content-Length", reason: "bad_framing"),
                                   requestID: requestID, keepAlive: false, context: context)
            }
            declaredLength = value
        }
        // A Transfer-Encoding field makes the body chunked whatever it holds, even nothing: an
        // empty or odd value must not let Content-Length frame the request instead.
        let chunked = hasTransferEncoding
        if hasTransferEncoding {
            // RFC 9112 §6.1: HTTP/1.0 has no chunked coding, so the body's end is unknowable; the
            // request is refused and the connection closed rather than decoded as chunked.
            if head.version == .http1_0 {
                return self.refuse(Refusal(status: 400, detail: "Transfer-Encoding in an HTTP/1.0 request", reason: "bad_framing"),
                                   requestID: requestID, keepAlive: false, context: context)
            }
            if hasContentLength {
                return self.refuse(Refusal(status: 400, detail: "Both Content-Length and Transfer-Encoding", reason: "bad_framing"),
                                   requestID: requestID, keepAlive: false, context: context)
            }
            let codings = head.headers[canonicalForm: "transfer-encoding"]
            guard let last = codings.last, last.utf8.elementsEqual("chunked".utf8, by: { $0 | 0x20 == $1 }) else {
                // RFC 9112 §6.3: a request whose final coding is not chunked has no knowable length.
                return self.refuse(Refusal(status: 400, detail: "Transfer-Encoding must end with chunked", reason: "bad_framing"),
                                   requestID: requestID, keepAlive: false, context: context)
            }
            if codings.count > 1 {
                // RFC 9112 §6.1: chunked at most once; any other coding is one the gateway does not
                // decode, so it is refused (501) rather than dropped or passed on unframed.
                let repeated = codings.dropLast().contains { $0.utf8.elementsEqual("chunked".utf8, by: { $0 | 0x20 == $1 }) }
                return self.refuse(
                    repeated
                        ? Refusal(status: 400, detail: "chunked applied more than once", reason: "bad_framing")
                        : Refusal(status: 501, detail: "Not Implemented", reason: "unsupported_transfer_coding"),
                    requestID: requestID, keepAlive: false, context: context)
            }
        }
        if let declaredLength, declaredLength > Int64(server.maxRequestBody) {
            return self.refuse(Refusal(status: 413, detail: "Request Entity Too Large", reason: "body_too_large"),
                               requestID: requestID, keepAlive: false, context: context)
        }

        // The upstream gets the method that was authorized, and HEAD carries no body (RFC 9110
        // §9.3.2): one that comes with a body is refused, never passed on as another method.
        if head.method == .HEAD && (chunked || (declaredLength ?? 0) > 0) {
            return self.refuse(Refusal(status: 400, detail: "A HEAD request has no body", reason: "bad_framing"),
                               requestID: requestID, keepAlive: false, context: context)
        }

        // The paths the gateway answers itself come before every route; the token endpoint is
        // decided here, before its body arrives. The target is normalized a second time only
        // when it could name one of these paths.
        if let endpoint = policy.config.tokenEndpoint, Self.mayName(head.uri, endpoint.path, policy.publishedKeySet != nil),
            case .success(let target) = RequestTarget.normalize(head.uri, mergeSlashes: server.mergeSlashes),
            let answer = policy.gatewayDecision(method: head.method.rawValue, path: target.path, host: Self.authorityOrHost(head))
        {
            // The decision checks Host for every other request; these are answered before it.
            if let field = head.headers.first(name: "host"), !RequestTarget.isValidHost(field) {
                return self.refuse(Refusal(status: 400, detail: "Invalid Host header", reason: "bad_host"),
                                   requestID: requestID, keepAlive: head.isKeepAlive, context: context)
            }
            self.current.route = Policy.tokenEndpointRoute
            if case .serve(.tokenEndpoint) = answer, self.environment.tokenService != nil {
                self.state = .token(TokenExchange(head: head, requestID: requestID, policy: policy, endpoint: endpoint))
                return
            }
            return self.answer(answer, requestID: requestID, keepAlive: head.isKeepAlive, context: context)
        }

        var credentialHeaders: [(name: String, value: String)] = []
        if !policy.credentialHeaderNames.isEmpty {
            for (name, value) in head.headers where policy.credentialHeaderNames.contains(name.lowercased()) {
                credentialHeaders.append((name, value))
            }
        }
        let facts = RequestFacts(
            method: head.method.rawValue, rawTarget: head.uri, host: head.headers.first(name: "host"),
            authorization: head.headers["authorization"], credentialHeaders: credentialHeaders)
        let pending = PendingRequest(
            head: head, facts: facts, declaredLength: declaredLength, chunked: chunked, requestID: requestID,
            generation: self.generation, policy: policy)
        self.handle(policy.decide(facts, now: WallClock.now()), pending, policy: policy, context: context)
    }

    /// How many elements a comma-separated field value holds, counted as NIOHTTP1's
    /// `canonicalForm` counts them (runs of bytes between commas).
    /// A token endpoint request being read.
    struct TokenExchange {
        var head: HTTPRequestHead
        var requestID: String
        var policy: Policy
        var endpoint: TokenEndpointConfig
        var body: [UInt8] = []
        var tooLarge = false
    }

    /// Token requests are small forms; anything larger is refused.
    static let maximumTokenRequestBytes = 64 << 10

    /// A request whose decision needs work first: a password check, or a key set fetch.
    struct PendingRequest {
        var head: HTTPRequestHead
        var facts: RequestFacts
        var declaredLength: Int64?
        var chunked: Bool
        var requestID: String
        var generation: Int
        /// The policy the request arrived under: it is decided again under the same one after
        /// a password check, whatever reloads happen meanwhile.
        var policy: Policy
        var ended = false
        /// Body parts that arrived while waiting; reading stops meanwhile, so these stay few.
        var buffered: [ByteBuffer] = []
        var bufferedBytes = 0
        var rounds = 0
    }

    private func handle(_ decision: Decision, _ pending: PendingRequest, policy: Policy, context: ChannelHandlerContext) {
        var pending = pending
        pending.rounds += 1
        switch decision {
        case .verify(let check) where pending.rounds <= 2:
            let throttle = self.environment.loginThrottle
            let client = self.current.client
            if let wait = throttle.retryAfter(address: client, now: WallClock.now()) {
                // Held back without hashing: the decision renders the 429.
                self.environment.metrics.loginFailure(reason: "throttled")
                pending.facts.verdict = .throttled(check, retryAfter: wait)
                return self.handle(policy.decide(pending.facts, now: WallClock.now()), pending, policy: policy, context: context)
            }
            guard let future = self.environment.hashPool.run(check, on: context.eventLoop) else {
                var refusal = Refusal(status: 503, headers: [("Retry-After", "1")], detail: "Service Unavailable", reason: "hash_queue_full")
                refusal.routeName = nil
                return self.refuse(refusal, requestID: pending.requestID, keepAlive: false, context: context)
            }
            self.state = .awaiting(pending)
            self.readPaused = true
            future.assumeIsolated().whenComplete { [generation = pending.generation, metrics = self.environment.metrics] result in
                guard case .success(let verdict) = result else { return }
                if verdict.matched == nil {
                    throttle.recordFailure(address: client, now: WallClock.now())
                    metrics.loginFailure(reason: check.kind == .apiKey ? "bad_api_key" : "bad_credentials")
                }
                self.resume(generation: generation) { pending in pending.facts.verdict = verdict }
            }
        case .verify:
            self.refuse(Refusal(status: 500, detail: "Internal Server Error", reason: "credential_loop"),
                        requestID: pending.requestID, keepAlive: false, context: context)
        case .refuse(let refusal) where refusal.keySetToRefresh != nil && pending.rounds <= 2
            && self.awaitKeySet(refusal.keySetToRefresh!, pending, context: context):
            // The token names a kid its issuer's key set lacks: the request waits for one fetch
            // of the set (under way, or started now within the rate limit), then is decided again.
            break
        default:
            self.act(on: decision, pending, policy: policy, context: context)
        }
    }

    /// Whether `uri` could normalize to `path` (or, with `wellKnown`, to a `/.well-known/` path):
    /// only when it spells the last segment of one, or has a percent-encoding that could.
    /// Spares the other requests a second normalization.
    static func mayName(_ uri: String, _ path: String, _ wellKnown: Bool) -> Bool {
        let utf8 = uri.utf8[...]
        if utf8.contains(UInt8(ascii: "%")) { return true }
        let lastSegment = path.utf8.split(separator: UInt8(ascii: "/")).last ?? path.utf8[...]
        return Self.contains(utf8, lastSegment) || (wellKnown && Self.contains(utf8, "well-known".utf8[...]))
    }

    private static func contains(_ haystack: Substring.UTF8View, _ needle: Substring.UTF8View) -> Bool {
        guard let first = needle.first else { return true }
        var rest = haystack
        while let start = rest.firstIndex(of: first) {
            if rest[start...].starts(with: needle) { return true }
            rest = rest[rest.index(after: start)...]
        }
        return false
    }

    /// Waits for a fetch of `set` if one is under way or allowed; `false` when neither.
    private func awaitKeySet(_ set: RemoteKeySet, _ pending: PendingRequest, context: ChannelHandlerContext) -> Bool {
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        let waiting = self.environment.jwks.fetchForUnknownKid(set, now: WallClock.now()) {
            [eventLoop = context.eventLoop, generation = pending.generation] _ in
            eventLoop.execute { loop.value.resume(generation: generation) { _ in } }
        }
        guard waiting else { return false }
        self.state = .awaiting(pending)
        self.readPaused = true
        return true
    }

    /// Decides again once the work a decision asked for is done.
    private func resume(generation: Int, _ update: (inout PendingRequest) -> Void) {
        guard let context = self.context, case .awaiting(var pending) = self.state, pending.generation == generation else {
            return
        }
        update(&pending)
        self.state = .idle
        self.handle(pending.policy.decide(pending.facts, now: WallClock.now()), pending, policy: pending.policy, context: context)
    }

    private func act(on decision: Decision, _ pending: PendingRequest, policy: Policy, context: ChannelHandlerContext) {
        switch decision {
        case .refuse(let refusal) where refusal.shadowPlan != nil:
            // Shadow mode: the refusal is only logged; the request goes through.
            self.current.wouldDeny = (refusal.status, refusal.reason)
            self.forward(
                pending.head, plan: refusal.shadowPlan!, policy: policy, declaredLength: pending.declaredLength,
                chunked: pending.chunked, requestID: pending.requestID, context: context)
        case .refuse(let refusal):
            // After CONNECT the parser treats the connection as a tunnel: nothing after it can be read as HTTP.
            let keepAlive = pending.head.isKeepAlive && pending.head.method != .CONNECT
            self.refuse(refusal, requestID: pending.requestID, keepAlive: keepAlive, context: context)
        case .forward(let plan):
            self.forward(
                pending.head, plan: plan, policy: policy, declaredLength: pending.declaredLength, chunked: pending.chunked,
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
        let waited = pending.rounds > 1
        if waited { self.readPaused = false }
        for buffer in pending.buffered { self.receiveBody(buffer, context: context) }
        if pending.ended { self.receiveEnd(context: context) }
        if waited && !self.readPaused && self.readPending {
            self.readPending = false
            context.read()
        }
    }

    private func forward(
        _ head: HTTPRequestHead, plan: ForwardPlan, policy: Policy, declaredLength: Int64?, chunked: Bool,
        requestID: String, context: ChannelHandlerContext
    ) {
        let server = policy.config.server
        let exchange = Exchange(
            generation: self.generation, keepAlive: head.isKeepAlive, requestID: requestID, isHead: head.method == .HEAD,
            clientIsHTTP10: head.version.major == 1 && head.version.minor == 0)
        self.state = .forwarding(exchange)
        self.current.route = plan.routeName
        self.current.subject = plan.identity?.subject
        self.current.upstreamStart = MonotonicClock.nanoseconds()

        var lines = UpstreamHeaderLines(reservingBytes: 256)
        let listed = HopByHopHeaders.listedInConnection(head.headers)
        let stripped = policy.identityHeaderNames
        let trustedPeer = self.peer.map { address in server.trustedProxies.contains { $0.contains(address) } } ?? false
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        let forwardAuthorization = plan.forwardAuthorization
        for (name, value) in head.headers {
            // Names are compared without lower-case copies where the list is fixed; only the
            // Connection-listed names and API key headers need one.
            if HopByHopHeaders.isAlways(name) || stripped.contains(where: { name.equalsIgnoringASCIICase($0) }) { continue }
            if name.utf8.contains(UInt8(ascii: "_")),
                HopByHopHeaders.posesAs(name, stripped) || HopByHopHeaders.posesAs(name, HopByHopHeaders.gatewaySet)
            {
                continue
            }
            var lower: String?
            if !listed.isEmpty {
                let lowered = name.lowercased()
                if listed.contains(lowered) { continue }
                lower = lowered
            }
            switch ForwardingRole(name) {
            case .forwardedFor:
                let hops = value.trimmingSpaces()
                if trustedPeer && !hops.isEmpty { forwardedFor = forwardedFor.map { $0 + ", " + hops } ?? hops }
                continue
            case .addressClaim:
                // RFC 7239 `Forwarded` and `X-Real-IP` name the client too: only a trusted
                // proxy may say who the client is, as with X-Forwarded-For.
                if !trustedPeer { continue }
            case .forwardedProto:
                if trustedPeer { forwardedProto = value }
                continue
            case .forwardedHost:
                if trustedPeer { forwardedHost = value }
                continue
            case .authorization:
                if !forwardAuthorization { continue }
            case .framing, .proxyCredential:
                // The gateway frames every upstream request itself, and answers 100-continue
                // itself. A credential for a proxy is this hop's, never the upstream's.
                continue
            case .other:
                if plan.stripAPIKeyHeaders {
                    let lowered = lower ?? name.lowercased()
                    if lowered != "cookie" && policy.credentialHeaderNames.contains(lowered) { continue }  // the API key itself
                }
            }
            lines.append(name: name, value: value)
        }
        let clientHost = Self.authorityOrHost(head)
        if plan.upstream.preserveHost, let clientHost { lines.append(name: "Host", value: clientHost) }
        lines.append(name: "X-Forwarded-For", value: forwardedFor.map { $0 + ", " + self.peerText } ?? self.peerText)
        lines.append(name: "X-Forwarded-Proto", value: forwardedProto ?? (server.tls == nil ? "http" : "https"))
        if let host = forwardedHost ?? clientHost { lines.append(name: "X-Forwarded-Host", value: host) }
        lines.append(name: "X-Request-Id", value: requestID)
        if let identity = plan.identity {
            let names = server.identityHeaders
            lines.append(name: names.subject, value: identity.subject)
            lines.append(name: names.scopes, value: identity.scopes.joined(separator: " "))
            lines.append(name: names.method, value: identity.method.rawValue)
        }

        let body: UpstreamRequest.Body
        if chunked {
            body = .streamed
        } else if let declaredLength, declaredLength > 0 || !Self.usuallyWithoutBody(head.method) {
            body = .length(declaredLength)
        } else {
            body = .none
        }
        let upstream = plan.upstream
        var socketPath: String?
        if case .unixSocket(let path) = upstream.target { socketPath = path }
        let request = UpstreamRequest(
            url: plan.upstreamURL, method: head.method.rawValue, headers: lines, body: body, unixSocketPath: socketPath,
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
        exchange.transfer = self.environment.curl.start(request, handler: bridge)
    }

    private func receiveBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        if case .token(var exchange) = self.state {
            let limit = min(Self.maximumTokenRequestBytes, exchange.policy.config.server.maxRequestBody)
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
            policy: exchange.policy, endpoint: exchange.endpoint, contentType: exchange.head.headers.first(name: "content-type"),
            authorization: exchange.head.headers["authorization"], body: exchange.body, client: self.current.client,
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

    fileprivate func upstreamHead(_ head: UpstreamResponseHead, generation: Int) {
        guard let context = self.context, case .forwarding(let exchange) = self.state, exchange.generation == generation
        else { return }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 2)
        let listed = HopByHopHeaders.listedInConnection(head.headers)
        for (name, value) in head.headers {
            if HopByHopHeaders.isAlways(name) || name.equalsIgnoringASCIICase("x-request-id") { continue }
            if !listed.isEmpty && listed.contains(name.lowercased()) { continue }
            headers.add(name: name, value: value)
        }
        headers.add(name: "X-Request-Id", value: exchange.requestID)
        let status = HTTPResponseStatus(statusCode: head.status, reasonPhrase: head.reason)
        var version = HTTPVersion.http1_1
        if exchange.clientIsHTTP10, status.mayHaveResponseBody, !exchange.isHead, !headers.contains(name: "content-length") {
            // No chunked coding for HTTP/1.0 (RFC 9112 §6.1): the body ends with the connection.
            // NIO frames by the head's version, so the head says 1.0.
            version = .http1_0
            exchange.keepAlive = false
        }
        if !exchange.keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if exchange.clientIsHTTP10 {
            headers.add(name: "Connection", value: "keep-alive")  // HTTP/1.0 closes by default
        }
        exchange.responseHeadSent = true
        self.current.status = head.status
        self.current.statusFromUpstream = true
        self.current.upstreamMilliseconds = MonotonicClock.milliseconds(since: self.current.upstreamStart)
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        // Flushed at the end of the batch, with whatever body came along: a head whose body
        // comes later (server-sent events, long polls) must not wait for it, and a head larger
        // than the channel's write buffer would otherwise block the body behind it for good.
        self.unflushed = true
    }

    fileprivate func upstreamBody(_ buffer: ByteBuffer, generation: Int) {
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
    fileprivate func upstreamBatchHandled() {
        guard self.unflushed else { return }
        self.unflushed = false
        self.context?.flush()
    }

    fileprivate func upstreamWantsBody(generation: Int) {
        guard let context = self.context, case .forwarding(let exchange) = self.state, exchange.generation == generation
        else { return }
        self.resumeReading(context: context)
    }

    fileprivate func upstreamFinished(_ error: UpstreamError?, generation: Int) {
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
        case .serve(.tokenEndpoint):
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
        var headers = HTTPHeaders()
        for (name, value) in refusal.headers { headers.add(name: name, value: value) }
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(refusal.body.count))
        headers.add(name: "X-Request-Id", value: requestID)
        let keepAlive = keepAlive && !self.environment.isDraining
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if self.answeringHTTP10 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: refusal.status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: refusal.body)))), promise: nil)
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
        guard !self.current.logged else { return }
        self.current.logged = true
        let entry = self.current
        let seconds = MonotonicClock.milliseconds(since: entry.start) / 1000
        self.series.record(
            self.environment.metrics, route: entry.route, decision: entry.wouldDeny == nil ? decision : "would_deny",
            status: entry.wouldDeny?.status ?? entry.status, seconds: seconds,
            upstreamSeconds: entry.upstreamMilliseconds.map { $0 / 1000 })
        guard let log = self.environment.accessLog else { return }
        var decision = decision
        var status = entry.status
        var reason = reason
        var upstreamStatus: Int?
        var sent: (status: Int?, reason: String?)?
        if let wouldDeny = entry.wouldDeny {
            // The line of a shadowed request carries the status that enforcement would have sent,
            // and what happened instead: the upstream's answer, or one of the gateway's own (a
            // 413, a 504, a client that left), which is never passed off as the upstream's.
            decision = "would_deny"
            if entry.statusFromUpstream {
                upstreamStatus = status
                if reason != nil { sent = (nil, reason) }
            } else {
                sent = (status == 0 ? nil : status, reason)
            }
            status = wouldDeny.status
            reason = wouldDeny.reason
        }
        log.record(
            AccessLog.Entry(
                requestID: entry.requestID, client: entry.client, method: entry.method, path: entry.path, route: entry.route,
                decision: decision, status: status, subject: entry.subject,
                durationMilliseconds: MonotonicClock.milliseconds(since: entry.start),
                upstreamMilliseconds: entry.upstreamMilliseconds, bytes: entry.bytes, reason: reason,
                upstreamStatus: upstreamStatus, sentStatus: sent?.status, sentReason: sent?.reason))
    }

    /// The target as the access log shows it: without query or fragment, which may carry keys,
    /// and, in absolute form, without the userinfo (`user:password@`) of its authority.
    private static func pathForLog(_ uri: String) -> String {
        var text = Substring(uri)
        if let mark = text.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            text = text[..<mark]
        }
        // scheme "://" authority: only absolute-form targets have one.
        guard text.utf8.first != UInt8(ascii: "/"), let colon = text.firstIndex(of: ":"),
            text[colon...].hasPrefix("://")
        else { return String(text) }
        let authorityStart = text.index(colon, offsetBy: 3)
        let authorityEnd = text[authorityStart...].firstIndex(of: "/") ?? text.endIndex
        guard let at = text[authorityStart..<authorityEnd].lastIndex(of: "@") else { return String(text) }
        return String(text[..<authorityStart]) + String(text[text.index(after: at)...])
    }

    /// The client's address for the throttle and the access log: from a trusted proxy, the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
    private func clientAddress(_ headers: HTTPHeaders, _ server: ServerConfig) -> String {
        guard !server.trustedProxies.isEmpty else { return self.peerText }
        return ClientAddress.resolve(
            peer: self.peerText, forwardedFor: headers[canonicalForm: "x-forwarded-for"].map(String.init),
            trustedProxies: server.trustedProxies)
    }

    /// More header fields than any browser or API client sends (Envoy's default is 100).
    static let maximumHeaderFields = 256

    private static func usuallyWithoutBody(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .DELETE, .OPTIONS, .TRACE: return true
        default: return false
        }
    }

    /// The authority of an absolute-form target, else the Host header.
    private static func authorityOrHost(_ head: HTTPRequestHead) -> String? {
        if !head.uri.hasPrefix("/"),
            case .success(let target) = RequestTarget.normalize(head.uri, mergeSlashes: false),
            let authority = target.authority
        {
            return authority
        }
        return head.headers.first(name: "host")?.trimmingSpaces()
    }

    /// The client's `X-Request-Id` when it is sane (1–128 characters of `[A-Za-z0-9._:-]`),
    /// else a fresh random one.
    static func requestID(_ headers: HTTPHeaders) -> String {
        if let given = headers.first(name: "x-request-id"), !given.isEmpty, given.utf8.count <= 128,
            given.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                    || byte == UInt8(ascii: ":")
            })
        {
            return given
        }
        return RequestIDs.next()
    }
}

/// What a client request header is to the forwarding step.
private enum ForwardingRole {
    case forwardedFor, forwardedProto, forwardedHost
    /// Fields that say who the client is or how it reached the edge (`Forwarded`, `X-Real-IP`,
    /// every other `X-Forwarded-*`, `True-Client-IP`, `X-Client-IP`, `Front-End-Https`,
    /// `X-Url-Scheme`): frameworks take scheme, port, prefix and address from them, so they are
    /// kept from trusted proxies only.
    case addressClaim
    case authorization
    /// `Proxy-Authorization`: a credential for this hop, never passed on.
    case proxyCredential
    /// `Host`, `Content-Length`, `Expect`, `X-Request-Id`: set by the gateway itself.
    case framing
    case other

    init(_ name: String) {
        if name.utf8.contains(UInt8(ascii: "_")) {
            // Read as an upstream that takes `_` for `-` would read it (CGI, and frameworks on it).
            switch ForwardingRole(String(name.map { $0 == "_" ? "-" : $0 })) {
            case .forwardedFor, .forwardedProto, .forwardedHost, .addressClaim: self = .addressClaim
            case .proxyCredential: self = .proxyCredential
            case .authorization, .framing, .other: self = .other
            }
            return
        }
        switch name.utf8.count {
        case 4 where name.equalsIgnoringASCIICase("host"): self = .framing
        case 6 where name.equalsIgnoringASCIICase("expect"): self = .framing
        case 9 where name.equalsIgnoringASCIICase("forwarded") || name.equalsIgnoringASCIICase("x-real-ip"): self = .addressClaim
        case 11 where name.equalsIgnoringASCIICase("x-client-ip"): self = .addressClaim
        case 12 where name.equalsIgnoringASCIICase("x-request-id"): self = .framing
        case 12 where name.equalsIgnoringASCIICase("x-url-scheme"): self = .addressClaim
        case 13 where name.equalsIgnoringASCIICase("authorization"): self = .authorization
        case 14 where name.equalsIgnoringASCIICase("content-length"): self = .framing
        case 14 where name.equalsIgnoringASCIICase("true-client-ip"): self = .addressClaim
        case 15 where name.equalsIgnoringASCIICase("x-forwarded-for"): self = .forwardedFor
        case 15 where name.equalsIgnoringASCIICase("front-end-https"): self = .addressClaim
        case 16 where name.equalsIgnoringASCIICase("x-forwarded-host"): self = .forwardedHost
        case 17 where name.equalsIgnoringASCIICase("x-forwarded-proto"): self = .forwardedProto
        case 19 where name.equalsIgnoringASCIICase("proxy-authorization"): self = .proxyCredential
        case 12... where Self.isForwardedFamily(name): self = .addressClaim
        default: self = .other
        }
    }

    /// `X-Forwarded-` followed by anything (`-Port`, `-Prefix`, `-Ssl`, `-Scheme`, `-Server`).
    private static func isForwardedFamily(_ name: String) -> Bool {
        let prefix = "x-forwarded-".utf8
        return name.utf8.prefix(prefix.count).elementsEqual(prefix) { ($0 | 0x20) == $1 }
    }
}

/// Request ids: 16 random hex digits chosen at start-up, then a 16-digit counter. Unique per
/// process and cheap: no random-number call (and no syscall) per request. They correlate log
/// lines; nothing relies on them being unguessable.
enum RequestIDs {
    private static let prefix = SecureRandom.hex(8)
    private static let counter = Atomic<UInt64>(0)

    private static let prefixBytes = Array(Self.prefix.utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func next() -> String {
        var value = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
        // One allocation: the prefix, then the counter as 16 zero-padded hex digits.
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for (index, byte) in Self.prefixBytes.enumerated() { buffer[index] = byte }
            for index in stride(from: 31, through: 16, by: -1) {
                buffer[index] = Self.hexDigits[Int(value & 0xF)]
                value >>= 4
            }
            return 32
        }
    }
}

/// Carries one exchange's upstream events from the curl thread to the connection's event loop.
///
/// Events are queued and handed over in batches: the first event of a batch schedules one task
/// on the loop, and every event queued before that task runs rides along. A small response
/// (head, body and end read in one pass of the curl loop) then costs one hop instead of three.
final class UpstreamBridge: UpstreamResponseHandler, Sendable {
    private enum Event {
        case head(UpstreamResponseHead)
        case body(ByteBuffer)
        case wantsBody
        case finished(UpstreamError?)
    }

    private struct Queue {
        var events: [Event] = []
        var scheduled = false
    }

    private let handler: NIOLoopBound<GatewayHandler>
    private let eventLoop: any EventLoop
    private let generation: Int
    private let queue = Mutex(Queue())

    init(handler: GatewayHandler, eventLoop: any EventLoop, generation: Int) {
        self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
        self.eventLoop = eventLoop
        self.generation = generation
    }

    private func enqueue(_ event: Event) {
        let schedule = self.queue.withLock { queue -> Bool in
            queue.events.append(event)
            defer { queue.scheduled = true }
            return !queue.scheduled
        }
        guard schedule else { return }
        self.eventLoop.execute { [self] in
            let events = self.queue.withLock { queue -> [Event] in
                queue.scheduled = false
                // Handing the array over whole (not emptying it in place) spares a copy.
                defer { queue.events = [] }
                return queue.events
            }
            let handler = self.handler.value
            for event in events {
                switch event {
                case .head(let head): handler.upstreamHead(head, generation: self.generation)
                case .body(let bytes): handler.upstreamBody(bytes, generation: self.generation)
                case .wantsBody: handler.upstreamWantsBody(generation: self.generation)
                case .finished(let error): handler.upstreamFinished(error, generation: self.generation)
                }
            }
            handler.upstreamBatchHandled()
        }
    }

    func upstreamResponseHead(_ head: UpstreamResponseHead) { self.enqueue(.head(head)) }
    func upstreamResponseBody(_ bytes: ByteBuffer) { self.enqueue(.body(bytes)) }
    func upstreamWantsRequestBody() { self.enqueue(.wantsBody) }
    func upstreamFinished(_ error: UpstreamError?) { self.enqueue(.finished(error)) }
}
