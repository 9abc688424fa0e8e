import NIOCore

/// Closes connections that stay silent too long between requests (`idle_timeout`) or take too
/// long to send a request head (`request_header_timeout`, the slow-loris guard).
///
/// Sits first in the pipeline and sees raw bytes: the first byte of a new request starts the
/// header deadline, and ``GatewayHandler`` reports when a head is complete and when the
/// connection is idle again. Confined to the channel's event loop.
///
/// Requests move the deadline two or three times each, so moving it must be cheap: it only
/// stores the new deadline. One timer per connection fires no later than the deadline and at
/// least every `min(idle_timeout, request_header_timeout)`; when it fires early it looks at the
/// deadline again and sleeps on. A busy keep-alive connection reschedules about once per that
/// period instead of twice per request.
final class ConnectionDeadlines: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Phase {
        case idle
        case readingHead
        case busy
    }

    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    /// The longest the timer sleeps between looks at the deadline.
    private let period: TimeAmount
    private var phase = Phase.idle
    /// When the connection closes unless something happens first; nil while an exchange runs.
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    /// When `timer` fires.
    private var timerFires = NIODeadline.distantPast
    private var context: ChannelHandlerContext?
    private var closeWhenIdle = false
    /// Counts the closes by kind (`request_header`, `idle`); nil on the admin listener.
    private let metrics: GatewayMetrics?

    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount, metrics: GatewayMetrics? = nil) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.period = min(idleTimeout, headerTimeout)
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.arm(self.idleTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.arm(self.idleTimeout)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        self.deadline = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .idle = self.phase {
            self.phase = .readingHead
            self.arm(self.headerTimeout)
        }
        context.fireChannelRead(data)
    }

    /// A whole request head arrived: no deadline while the exchange runs.
    func headReceived() {
        self.phase = .busy
        self.deadline = nil
    }

    /// The exchange is over and the connection waits for the next request. The handlers call
    /// this as soon as the end of the answer is handed to the channel, without waiting for it
    /// to be written: a close for the drain waits for the writes (``closeAfterWrites()``).
    func becameIdle() {
        self.phase = .idle
        if self.closeWhenIdle {
            self.closeAfterWrites()
            return
        }
        self.arm(self.idleTimeout)
    }

    /// During shutdown: closes the connection now if no exchange is running, and makes it
    /// close as soon as it next becomes idle otherwise.
    func closeIfIdle() {
        self.closeWhenIdle = true
        if case .idle = self.phase { self.closeAfterWrites() }
    }

    /// Closes once every answer written so far has gone out: writes complete in order, so an
    /// empty one completes after all of them (a close on its own would drop the ones still
    /// waiting for the socket).
    private func closeAfterWrites() {
        guard let context = self.context else { return }
        let channel = context.channel
        context.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func arm(_ amount: TimeAmount) {
        let now = NIODeadline.now()
        let deadline = now + amount
        self.deadline = deadline
        if self.timer != nil && self.timerFires <= deadline { return }
        self.schedule(at: min(deadline, now + self.period))
    }

    private func schedule(at when: NIODeadline) {
        self.timer?.cancel()
        guard let context = self.context, context.channel.isActive else { return }
        self.timerFires = when
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            self.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        guard let deadline = self.deadline else { return }  // an exchange runs; the next arm reschedules
        let now = NIODeadline.now()
        if now >= deadline {
            // A head that never completes leaves no access-log line (it was never a request);
            // the counter is where a slow-loris attack shows.
            let readingHead = if case .readingHead = self.phase { true } else { false }
            self.metrics?.connectionTimedOut(kind: readingHead ? "request_header" : "idle")
            self.context?.channel.close(promise: nil)
        } else {
            self.schedule(at: min(deadline, now + self.period))
        }
    }
}
