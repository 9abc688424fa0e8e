import NIOCore
import NIOHTTP1

/// Hands ``GatewayHandler`` or ``DecisionHandler`` one request at a time: parts of a pipelined
/// request that arrive while the previous response is still being written (or, for a decision,
/// still being decided) wait here, in order, together with any parse error among them, and are
/// delivered once that response has ended.
///
/// A response ends with its `.end` part; with `wholeAnswers`, every write is a whole answer
/// already encoded (the decision service's, ``AnswerBytes``) and ends one.
///
/// Unlike NIO's `HTTPServerPipelineHandler`, it does not stop reading the socket for every
/// request whose response is pending: that costs two `epoll_ctl` calls per exchange. A client
/// that is not pipelining sends its next request as soon as the response body is complete,
/// which can be a moment before the response's end has passed through here, so one waiting
/// request is ordinary. Reading stops only once more than ``waitingLimit`` parts or
/// ``waitingByteLimit`` body bytes wait, which bounds what a pipelining client can make the
/// gateway hold. A new request is also held while the channel is not writable (the client is
/// not reading its answers), so the answers a client has not read cannot pile up either.
final class RequestSequencer: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Event {
        case part(HTTPServerRequestPart)
        case error(any Error)
    }

    /// A request head was delivered and its end has not been.
    private var requestOpen = false
    /// A request head was delivered and the end of its response has not been written.
    private var responseOpen = false
    private var waiting = CircularBuffer<Event>()
    private var waitingBytes = 0
    private var readPending = false
    /// The client shut down its sending side.
    private var inputClosed = false

    static let waitingLimit = 16
    static let waitingByteLimit = 64 << 10

    /// Each write is a whole answer, as bytes: its handler has no response encoder after it.
    private let wholeAnswers: Bool

    init(wholeAnswers: Bool = false) {
        self.wholeAnswers = wholeAnswers
    }

    /// Parts of the next request wait while the current one has ended and its response has not.
    private var mustWait: Bool { !self.waiting.isEmpty || (self.responseOpen && !self.requestOpen) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        // A new request also waits while earlier answers are not leaving: a client that sends
        // but never reads would otherwise fill memory with responses.
        if self.mustWait || (Self.isHead(part) && !context.channel.isWritable) {
            if case .body(let buffer) = part { self.waitingBytes += buffer.readableBytes }
            self.waiting.append(.part(part))
        } else {
            self.deliver(part, as: data, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.mustWait {
            self.waiting.append(.error(error))
        } else {
            context.fireErrorCaught(error)
        }
    }

    func read(context: ChannelHandlerContext) {
        if self.waiting.count < Self.waitingLimit && self.waitingBytes < Self.waitingByteLimit {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard self.wholeAnswers || Self.isEnd(self.unwrapOutboundIn(data)) else {
            context.write(data, promise: promise)
            return
        }
        self.responseOpen = false
        if self.inputClosed && self.waiting.isEmpty {
            // The last answer the client can ask for: close once it is written.
            let written = promise ?? context.eventLoop.makePromise()
            context.write(data, promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.write(data, promise: promise)
        // Later, not from inside whatever wrote the response: the next request must find the
        // handler after it has finished with this one.
        if !self.waiting.isEmpty {
            context.eventLoop.assumeIsolated().execute { self.deliverWaiting(context: context) }
        }
    }

    /// The client shut down its sending side (`shutdown(SHUT_WR)`, as `nc` does at the end of
    /// its input): every request it sent is answered in turn, then the connection closes.
    /// Only plain-TCP listeners allow half-closure (``GatewayServer``); with TLS a close ends
    /// the connection.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            self.inputClosed = true
            if !self.responseOpen && self.waiting.isEmpty { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !self.waiting.isEmpty {
            self.deliverWaiting(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.waiting.removeAll()
        self.waitingBytes = 0
        context.fireChannelInactive()
    }

    private static func isEnd(_ part: HTTPServerResponsePart) -> Bool {
        if case .end = part { return true }
        return false
    }

    private static func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { return true }
        return false
    }

    /// - Parameter data: `part` as it came, passed on as it is (wrapping it again costs an
    ///   allocation); `nil` for a part that waited.
    private func deliver(_ part: HTTPServerRequestPart, as data: NIOAny? = nil, context: ChannelHandlerContext) {
        switch part {
        case .head:
            self.requestOpen = true
            self.responseOpen = true
        case .body:
            break
        case .end:
            self.requestOpen = false
        }
        context.fireChannelRead(data ?? self.wrapInboundOut(part))
    }

    /// Delivers waiting events until the next request has ended and awaits its response.
    private func deliverWaiting(context: ChannelHandlerContext) {
        while let next = self.waiting.first, !(self.responseOpen && !self.requestOpen) {
            if case .part(let part) = next, Self.isHead(part), !context.channel.isWritable { break }
            switch self.waiting.removeFirst() {
            case .part(let part):
                if case .body(let buffer) = part { self.waitingBytes -= buffer.readableBytes }
                self.deliver(part, context: context)
            case .error(let error): context.fireErrorCaught(error)
            }
        }
        if self.readPending && self.waiting.count < Self.waitingLimit && self.waitingBytes < Self.waitingByteLimit {
            self.readPending = false
            context.read()
        }
    }
}
