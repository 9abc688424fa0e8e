import NIOCore
import NIOHTTP1
import PortcullisCore

/// The admin listener: `/healthz` (200 while running), `/readyz` (200 once every `jwks_url` key
/// set has loaded, 503 before), `/metrics` (Prometheus text). Confined to its channel's loop.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let environment: GatewayEnvironment
    /// The same header and idle deadlines as the public listener: an admin port is no place to
    /// hold connections open for free.
    private let deadlines: ConnectionDeadlines
    private var head: HTTPRequestHead?

    init(environment: GatewayEnvironment, deadlines: ConnectionDeadlines) {
        self.environment = environment
        self.deadlines = deadlines
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.deadlines.headReceived()
        case .body: break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.answer(head, context: context)
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        var status = HTTPResponseStatus.ok
        var contentType = "text/plain; charset=utf-8"
        var body: [UInt8]
        let known = ["/healthz", "/readyz", "/metrics"].contains(path)
        guard !known || head.method == .GET || head.method == .HEAD else {
            return self.write(
                .methodNotAllowed, contentType, Array("method not allowed\n".utf8), head, context, extra: [("Allow", "GET, HEAD")])
        }
        switch path {
        case "/healthz":
            body = Array("ok\n".utf8)
        case "/readyz":
            let waiting = self.environment.policies.current.verifier.remoteKeySets.values.filter { !$0.isLoaded }.map(\.issuer)
            if waiting.isEmpty {
                body = Array("ready\n".utf8)
            } else {
                status = .serviceUnavailable
                body = Array("not ready: key sets not loaded for \(waiting.sorted().joined(separator: ", "))\n".utf8)
            }
        case "/metrics":
            contentType = "text/plain; version=0.0.4; charset=utf-8"
            self.environment.metrics.syncDroppedLines([
                ("access", self.environment.accessLog?.droppedLines ?? 0), ("stderr", LineWriter.standardError.droppedLines),
            ])
            body = self.environment.metrics.render()
        default:
            status = .notFound
            body = Array("not found\n".utf8)
        }
        self.write(status, contentType, body, head, context)
    }

    private func write(
        _ status: HTTPResponseStatus, _ contentType: String, _ body: [UInt8], _ request: HTTPRequestHead,
        _ context: ChannelHandlerContext, extra: [(String, String)] = []
    ) {
        var headers = HTTPHeaders(extra)
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = request.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [deadlines] _ in
            if keepAlive { deadlines.becameIdle() } else { channel.close(promise: nil) }
        }
    }
}
