import NIOCore
import NIOEmbedded
import NIOHTTP1
import PortcullisCore
@testable import PortcullisServer
import Testing

/// The connection handler in its real pipeline (decoder, sequencer, handler, encoder) on an
/// `EmbeddedChannel`: bytes in, bytes out, no socket. Only answers of the gateway's own are
/// exercised here; forwarding is tested against real upstreams by the integration tests.
@Suite("Gateway handler on an embedded channel")
struct GatewayHandlerTests {
    static let config = """
        version: 1
        server:
          listen: "127.0.0.1:0"
          realm: "test"
        jwt:
          issuers:
            - issuer: "https://issuer.test"
              audiences: ["api"]
              algorithms: [HS256]
              keys:
                - { kid: k1, secret_env: S }
        upstreams:
          app: { url: "http://127.0.0.1:9" }
        routes:
          - name: items
            match: { path: /items, methods: [GET] }
            auth: bearer
            upstream: app
        """

    static let environment = GatewayEnvironment.embedded(
        config: Self.config, variables: ["S": "0123456789abcdef0123456789abcdef"])

    /// A channel with the gateway's pipeline, as `serve` builds it for plain TCP.
    static func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let deadlines = ConnectionDeadlines(idleTimeout: .seconds(60), headerTimeout: .seconds(10))
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(deadlines)
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try sync.addHandler(RequestSequencer())
        try sync.addHandler(GatewayHandler(environment: Self.environment, deadlines: deadlines))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        return channel
    }

    /// Everything the channel wrote, as text.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    static func statuses(_ text: String) -> [String] {
        // Bodies end without a newline: a status line may follow one on the same line.
        var statuses: [String] = []
        var rest = Substring(text)
        while let start = rest.firstRange(of: "HTTP/1.") {
            let code = rest[start.upperBound...].dropFirst(2).prefix(3)
            statuses.append(String(code))
            rest = rest[start.upperBound...]
        }
        return statuses
    }

    @Test("a request without a token gets the route's Bearer challenge, and the connection stays")
    func challenge() throws {
        let channel = try Self.channel()
        try channel.writeInbound(ByteBuffer(string: "GET /items HTTP/1.1\r\nHost: gw\r\n\r\n"))
        let text = try Self.written(channel)
        #expect(Self.statuses(text) == ["401"])
        #expect(text.contains("WWW-Authenticate: Bearer realm=\"test\""))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test("pipelined requests are answered in order on one connection")
    func pipelining() throws {
        let channel = try Self.channel()
        try channel.writeInbound(
            ByteBuffer(
                string: "GET /items HTTP/1.1\r\nHost: gw\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: gw\r\n\r\n"
                    + "POST /items HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"))
        channel.embeddedEventLoop.run()
        let text = try Self.written(channel)
        #expect(Self.statuses(text) == ["401", "404", "405"], "\(text)")
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test("HTTP/1.0 without keep-alive: answered, then closed")
    func http10() throws {
        let channel = try Self.channel()
        try channel.writeInbound(ByteBuffer(string: "GET /nowhere HTTP/1.0\r\n\r\n"))
        channel.embeddedEventLoop.run()
        let text = try Self.written(channel)
        #expect(Self.statuses(text) == ["404"])
        #expect(text.contains("Connection: close"))
        #expect(!channel.isActive)
    }

    @Test("framing in doubt: 400, and nothing after it is read as a request")
    func smuggling() throws {
        let channel = try Self.channel()
        _ = try? channel.writeInbound(
            ByteBuffer(
                string: "POST /items HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "0\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: gw\r\n\r\n"))
        channel.embeddedEventLoop.run()
        let text = try Self.written(channel)
        #expect(Self.statuses(text) == ["400"])
        #expect(!channel.isActive)
    }

    @Test("bytes that are no request get a 400 and the connection closes")
    func garbage() throws {
        let channel = try Self.channel()
        _ = try? channel.writeInbound(ByteBuffer(string: "\u{1}\u{2} nonsense\r\n\r\n"))
        channel.embeddedEventLoop.run()
        let text = try Self.written(channel)
        #expect(Self.statuses(text) == ["400"])
        #expect(!channel.isActive)
    }

    @Test("half-close: the requests already sent are answered, then the connection closes")
    func halfClose() throws {
        let channel = try Self.channel()
        try channel.writeInbound(ByteBuffer(string: "GET /items HTTP/1.1\r\nHost: gw\r\n\r\n"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        channel.embeddedEventLoop.run()
        let text = try Self.written(channel)
        #expect(Self.statuses(text) == ["401"])
        #expect(!channel.isActive)
    }

    @Test("a HEAD with a body is refused, never passed on as another method")
    func headWithBody() throws {
        let channel = try Self.channel()
        _ = try? channel.writeInbound(ByteBuffer(string: "HEAD /items HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"))
        channel.embeddedEventLoop.run()
        #expect(Self.statuses(try Self.written(channel)) == ["400"])
        #expect(!channel.isActive)
    }
}
