import NIOCore

/// Closes connections that stay silent too long between requests (`idle_timeout`) or take too
/// long to send a request head (`request_header_timeout`, the slow-loris guard).
///
/// Sits first in the pipeline and sees raw bytes: the first byte of a new request starts the
/// header deadline, and ``GatewayHandler`` reports when a head is complete and when the
/// connection is idle again. Confined to the channel's event loop.
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
    private var phase = Phase.idle
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var closeWhenIdle = false

    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
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
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
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
        self.timer?.cancel()
        self.timer = nil
    }

    /// The exchange is over and the connection waits for the next request.
    func becameIdle() {
        self.phase = .idle
        if self.closeWhenIdle {
            self.context?.channel.close(promise: nil)
            return
        }
        self.arm(self.idleTimeout)
    }

    /// During shutdown: closes the connection now if no exchange is running, and makes it
    /// close as soon as it next becomes idle otherwise.
    func closeIfIdle() {
        self.closeWhenIdle = true
        if case .idle = self.phase { self.context?.channel.close(promise: nil) }
    }

    private func arm(_ amount: TimeAmount) {
        self.timer?.cancel()
        guard let context = self.context else { return }
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: amount) {
            channel.close(promise: nil)
        }
    }
}
