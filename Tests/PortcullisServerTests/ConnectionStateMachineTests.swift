import NIOCore
import NIOHTTP1
import PortcullisCore
@testable import PortcullisServer
import PortcullisUpstream
import Testing

/// The connection's rules, event by event, without a socket or an upstream.
@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine<String>

    static func head(
        _ method: HTTPMethod = .GET, _ uri: String = "/", version: HTTPVersion = .http1_1, _ fields: [(String, String)] = []
    ) -> HTTPRequestHead {
        var headers = HTTPHeaders([("Host", "gw")])
        for (name, value) in fields { headers.add(name: name, value: value) }
        return HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
    }

    static func upstreamHead(_ status: Int = 200, _ fields: [(name: String, value: String)] = [("Content-Length", "2")])
        -> UpstreamResponseHead
    {
        UpstreamResponseHead(status: status, reason: "", headers: fields)
    }

    static let buffer = ByteBuffer(string: "hello")

    /// Starts a request that the decision forwards; returns its generation.
    static func forwarding(
        _ machine: inout Machine, _ head: HTTPRequestHead = Self.head(), maximumBody: Int = 1 << 20
    ) -> (generation: Int, start: Machine.Start) {
        guard case .decide = machine.receivedHead(head, requestID: "r", maximumBody: maximumBody) else {
            Issue.record("head not decided")
            return (0, Machine.Start(body: .none, sendContinue: false))
        }
        let start = machine.forward(responseHeaders: [])
        return (machine.generation, start)
    }

    @Test("a keep-alive exchange ends idle, and the next request gets a new generation")
    func keepAlive() {
        var machine = Machine()
        let (generation, start) = Self.forwarding(&machine)
        #expect(start.body == .none && !start.sendContinue)
        guard case .endUpstreamBody = machine.receiveEnd() else { Issue.record("end not passed on"); return }
        guard case .writeHead(let head) = machine.upstreamHead(Self.upstreamHead(), generation: generation) else {
            Issue.record("no head written"); return
        }
        #expect(head.status == .ok && head.headers["X-Request-Id"] == ["r"] && !head.headers.contains(name: "connection"))
        guard case .writeBody = machine.upstreamBody(Self.buffer, generation: generation) else { Issue.record("no body"); return }
        guard case .finishResponse(keepAlive: true, read: false) = machine.upstreamFinished(nil, generation: generation) else {
            Issue.record("not kept alive"); return
        }
        guard case .idle = machine.state else { Issue.record("not idle"); return }
        let (next, _) = Self.forwarding(&machine)
        #expect(next == generation + 1)
    }

    @Test("pipelining: events of an earlier request's exchange are dropped")
    func staleEvents() {
        var machine = Machine()
        let (first, _) = Self.forwarding(&machine)
        _ = machine.receiveEnd()
        _ = machine.upstreamHead(Self.upstreamHead(), generation: first)
        _ = machine.upstreamFinished(nil, generation: first)
        let (second, _) = Self.forwarding(&machine)
        #expect(second != first)
        guard case .none = machine.upstreamHead(Self.upstreamHead(), generation: first) else { Issue.record("stale head used"); return }
        guard case .none = machine.upstreamFinished(UpstreamError(kind: .badGateway, curlCode: 7, message: "x"), generation: first)
        else { Issue.record("stale failure used"); return }
        guard case .forwarding = machine.state else { Issue.record("current exchange disturbed"); return }
    }

    @Test("HTTP/1.0: a response without a length ends with the connection; one with a length may keep it")
    func http10() {
        var machine = Machine()
        let (generation, _) = Self.forwarding(&machine, Self.head(version: .http1_0))
        _ = machine.receiveEnd()
        guard case .writeHead(let head) = machine.upstreamHead(Self.upstreamHead(200, []), generation: generation) else {
            Issue.record("no head"); return
        }
        #expect(head.version == .http1_0 && head.headers["Connection"] == ["close"])
        guard case .finishResponse(keepAlive: false, _) = machine.upstreamFinished(nil, generation: generation) else {
            Issue.record("kept an HTTP/1.0 connection without a length"); return
        }
        guard case .closing = machine.state else { Issue.record("not closing"); return }
        guard case .ignore = machine.receivedHead(Self.head(), requestID: "s", maximumBody: 10) else {
            Issue.record("a closing connection took another request"); return
        }

        var kept = Machine()
        let (again, _) = Self.forwarding(&kept, Self.head(version: .http1_0, [("Connection", "keep-alive")]))
        _ = kept.receiveEnd()
        guard case .writeHead(let keptHead) = kept.upstreamHead(Self.upstreamHead(), generation: again) else {
            Issue.record("no head"); return
        }
        #expect(keptHead.headers["Connection"] == ["keep-alive"])
        guard case .finishResponse(keepAlive: true, _) = kept.upstreamFinished(nil, generation: again) else {
            Issue.record("HTTP/1.0 keep-alive not kept"); return
        }
    }

    @Test("backpressure: a full upstream holds reads back until it asks for more")
    func backpressure() {
        var machine = Machine()
        let (generation, start) = Self.forwarding(&machine, Self.head(.POST, "/", [("Content-Length", "10")]))
        #expect(start.body == .length(10))
        let passes1 = machine.readRequested()
        #expect(passes1)
        guard case .sendBody = machine.receiveBody(Self.buffer) else { Issue.record("body not sent"); return }
        machine.upstreamBodyFull()
        let passes2 = machine.readRequested()
        #expect(!passes2)
        guard case .read = machine.upstreamWantsBody(generation: generation) else { Issue.record("held read not passed on"); return }
        let passes3 = machine.readRequested()
        #expect(passes3)
    }

    @Test("a decision that waits holds reading and the body back, then hands both on")
    func waitingDecision() {
        var machine = Machine()
        guard case .decide = machine.receivedHead(Self.head(.POST, "/", [("Content-Length", "10")]), requestID: "r", maximumBody: 100)
        else { Issue.record("not decided"); return }
        machine.awaitDecision()
        let passes4 = machine.readRequested()
        #expect(!passes4)
        _ = machine.receiveBody(Self.buffer)
        _ = machine.receiveBody(Self.buffer)
        _ = machine.receiveEnd()
        let stale = machine.decisionArrived(generation: machine.generation + 1)
        #expect(stale == nil)
        guard let waiting = machine.decisionArrived(generation: machine.generation) else { Issue.record("nothing waited"); return }
        #expect(waiting.buffered.count == 2 && waiting.ended)
        _ = machine.forward(responseHeaders: [])
        guard case .sendBody = machine.receiveBody(waiting.buffered[0]) else { Issue.record("waited body not sent"); return }
        guard case .read = machine.waitOver() else { Issue.record("the held read was lost"); return }
    }

    @Test("the upstream failing before its head: 502, kept alive only when the request had ended")
    func upstreamFailsBeforeHead() {
        var machine = Machine()
        let (generation, _) = Self.forwarding(&machine)
        _ = machine.receiveEnd()
        guard case .answer(let answer) = machine.upstreamFinished(
            UpstreamError(kind: .badGateway, curlCode: 7, message: "refused"), generation: generation)
        else { Issue.record("no answer"); return }
        #expect(answer.refusal.status == 502 && answer.keepAlive && answer.idleAfter && answer.decision == .allow)
        #expect(answer.upstreamFailure != nil && answer.endsUpstream)

        var midBody = Machine()
        let (second, _) = Self.forwarding(&midBody, Self.head(.POST, "/", [("Content-Length", "10")]))
        guard case .answer(let timeout) = midBody.upstreamFinished(
            UpstreamError(kind: .timeout, curlCode: 28, message: "t"), generation: second)
        else { Issue.record("no answer"); return }
        // The body stopped coming while the gateway waited for it: the client's fault.
        #expect(timeout.refusal.status == 408 && !timeout.keepAlive)

        var held = Machine()
        let (third, _) = Self.forwarding(&held, Self.head(.POST, "/", [("Content-Length", "10")]))
        held.upstreamBodyFull()
        guard case .answer(let gatewayTimeout) = held.upstreamFinished(
            UpstreamError(kind: .timeout, curlCode: 28, message: "t"), generation: third)
        else { Issue.record("no answer"); return }
        #expect(gatewayTimeout.refusal.status == 504 && !gatewayTimeout.keepAlive)
    }

    @Test("the upstream failing after its head: the connection closes, what arrived is flushed")
    func upstreamFailsAfterHead() {
        var machine = Machine()
        let (generation, _) = Self.forwarding(&machine)
        _ = machine.receiveEnd()
        _ = machine.upstreamHead(Self.upstreamHead(), generation: generation)
        guard case .close(let close) = machine.upstreamFinished(
            UpstreamError(kind: .badGateway, curlCode: 56, message: "reset"), generation: generation)
        else { Issue.record("not closed"); return }
        #expect(close.flush && close.upstreamFailure == .badGateway && close.log?.reason == .upstreamFailedMidBody)
    }

    @Test("the client gone mid-body: the exchange is cancelled and the request logged once")
    func clientGone() {
        var machine = Machine()
        _ = Self.forwarding(&machine, Self.head(.POST, "/", [("Content-Length", "10")]))
        _ = machine.receiveBody(Self.buffer)
        guard case .answer(let answer) = machine.parseFailed(.invalidEOFState) else { Issue.record("no answer"); return }
        #expect(answer.refusal.reason == .incompleteBody && answer.decision == .allow && answer.cancelUpstream && !answer.keepAlive)
        let closed = machine.channelClosed()
        #expect(closed == nil)  // logged already

        var streaming = Machine()
        let (generation, _) = Self.forwarding(&streaming, Self.head(.POST, "/", [("Content-Length", "10")]))
        _ = streaming.upstreamHead(Self.upstreamHead(), generation: generation)
        let close = streaming.channelClosed()
        #expect(close?.cancelUpstream == true && close?.log?.reason == .clientClosed)
    }

    @Test("half-close after a complete request: the answer still goes out")
    func halfClose() {
        var machine = Machine()
        let (generation, _) = Self.forwarding(&machine)
        _ = machine.receiveEnd()
        // The client shut its sending side: the decoder has nothing more, the exchange goes on.
        guard case .writeHead = machine.upstreamHead(Self.upstreamHead(), generation: generation) else {
            Issue.record("no head"); return
        }
        guard case .finishResponse = machine.upstreamFinished(nil, generation: generation) else { Issue.record("not finished"); return }
    }

    @Test("a body over the limit: 413 before the response head, a close after it")
    func bodyLimit() {
        var machine = Machine()
        _ = Self.forwarding(&machine, Self.head(.POST, "/", [("Transfer-Encoding", "chunked")]), maximumBody: 8)
        guard case .sendBody = machine.receiveBody(Self.buffer) else { Issue.record("body not sent"); return }
        guard case .answer(let answer) = machine.receiveBody(Self.buffer) else { Issue.record("limit not enforced"); return }
        #expect(answer.refusal.status == 413 && answer.cancelUpstream && !answer.keepAlive)

        var streaming = Machine()
        let (generation, _) = Self.forwarding(&streaming, Self.head(.POST, "/", [("Transfer-Encoding", "chunked")]), maximumBody: 8)
        _ = streaming.upstreamHead(Self.upstreamHead(), generation: generation)
        _ = streaming.receiveBody(Self.buffer)
        guard case .close(let close) = streaming.receiveBody(Self.buffer) else { Issue.record("not closed"); return }
        #expect(close.cancelUpstream)
    }

    @Test("framing in doubt is answered and ends the connection; CONNECT is never kept")
    func framingAndConnect() {
        var machine = Machine()
        let head = Self.head(.POST, "/", [("Content-Length", "3"), ("Transfer-Encoding", "chunked")])
        guard case .answer(.answer(let answer)) = machine.receivedHead(head, requestID: "r", maximumBody: 100) else {
            Issue.record("not refused"); return
        }
        #expect(answer.refusal.status == 400 && !answer.keepAlive)
        _ = machine.receiveEnd()
        guard case .ignore = machine.receivedHead(Self.head(), requestID: "s", maximumBody: 100) else {
            Issue.record("read a request after framing in doubt"); return
        }

        var connect = Machine()
        _ = connect.receivedHead(Self.head(.CONNECT, "gw:443"), requestID: "r", maximumBody: 100)
        guard case .answer(let refused) = connect.answer(Refusal(status: 405, detail: "Method Not Allowed", reason: .methodNotAllowed)) else {
            Issue.record("no answer"); return
        }
        #expect(!refused.keepAlive)
    }

    @Test("a refusal drops the rest of the body, then waits for the next request")
    func refusalDiscards() {
        var machine = Machine()
        _ = machine.receivedHead(Self.head(.POST, "/", [("Content-Length", "10")]), requestID: "r", maximumBody: 100)
        guard case .answer(let answer) = machine.answer(Refusal(status: 401, detail: "Unauthorized", reason: .missingCredentials))
        else { Issue.record("no answer"); return }
        #expect(answer.keepAlive && !answer.idleAfter && answer.decision == .deny)
        guard case .none = machine.receiveBody(Self.buffer) else { Issue.record("refused body passed on"); return }
        guard case .becameIdle = machine.receiveEnd() else { Issue.record("not idle after the body"); return }
    }

    @Test("Expect: 100-continue only for HTTP/1.1 requests with a body")
    func expectContinue() {
        var machine = Machine()
        let (_, start) = Self.forwarding(&machine, Self.head(.POST, "/", [("Content-Length", "4"), ("Expect", "100-Continue")]))
        #expect(start.sendContinue)
        var old = Machine()
        let (_, oldStart) = Self.forwarding(
            &old, Self.head(.POST, "/", version: .http1_0, [("Content-Length", "4"), ("Expect", "100-continue")]))
        #expect(!oldStart.sendContinue)
        var empty = Machine()
        let (_, emptyStart) = Self.forwarding(&empty, Self.head(.GET, "/", [("Expect", "100-continue")]))
        #expect(!emptyStart.sendContinue)
    }

    @Test("the token endpoint: the body is collected within its limit, and a stale answer is dropped")
    func tokenEndpoint() {
        var machine = Machine()
        _ = machine.receivedHead(Self.head(.POST, "/token", [("Content-Length", "10")]), requestID: "r", maximumBody: 100)
        machine.collectTokenBody("token", limit: 8)
        _ = machine.receiveBody(ByteBuffer(string: "a=1"))
        guard case .answerToken("token", let body) = machine.receiveEnd() else { Issue.record("not answered"); return }
        #expect(body == Array("a=1".utf8))
        let reply = Refusal(status: 200, headers: [], body: [], reason: .issued)
        guard case .none = machine.tokenAnswered(generation: machine.generation - 1, reply, decision: .allow) else {
            Issue.record("stale answer used"); return
        }
        guard case .answer(let answer) = machine.tokenAnswered(generation: machine.generation, reply, decision: .allow) else {
            Issue.record("answer dropped"); return
        }
        #expect(answer.keepAlive && answer.idleAfter)

        var large = Machine()
        _ = large.receivedHead(Self.head(.POST, "/token", [("Content-Length", "10")]), requestID: "r", maximumBody: 100)
        large.collectTokenBody("token", limit: 4)
        _ = large.receiveBody(Self.buffer)
        guard case .answer(let refused) = large.receiveEnd() else { Issue.record("not refused"); return }
        #expect(refused.refusal.status == 413 && !refused.keepAlive)
    }

    @Test("a malformed request before any head gets a 400 that starts its own log line")
    func garbage() {
        var machine = Machine()
        guard case .answer(let answer) = machine.parseFailed(.invalidHeaderToken) else { Issue.record("no answer"); return }
        #expect(answer.startsRequest && answer.refusal.status == 400 && !answer.keepAlive)
        guard case .none = machine.parseFailed(.invalidEOFState) else { Issue.record("answered twice"); return }
    }
}
