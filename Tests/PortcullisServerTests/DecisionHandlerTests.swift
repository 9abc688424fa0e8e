import NIOCore
import NIOEmbedded
import NIOHTTP1
import PortcullisCore
@testable import PortcullisServer
import Testing

/// The decision listener's pipeline (NIO's request decoder, the sequencer, the handler) on an
/// `EmbeddedChannel`: the order of answers while the edge proxy is not reading them, and the
/// reads held back while too many requests wait. What each answer says is tested against
/// real edge proxies by the integration tests.
@Suite("Decision handler on an embedded channel")
struct DecisionHandlerTests {
    static let environment = GatewayEnvironment.embedded(
        config: """
            version: 1
            server: { listen: "", admin_listen: "" }
            decisions: { listen: "127.0.0.1:0", request_from: original, trusted_proxies: ["127.0.0.1/32"] }
            routes:
              - { name: open, match: { path: /open }, auth: none }
              - { name: closed, match: { path: /closed }, auth: basic }
            """)

    /// Counts the reads that reach the socket.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    static func channel(counter: ReadCounter) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        // The peer first: the handler reads its address when it is added, as on an accepted connection.
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        let deadlines = ConnectionDeadlines(idleTimeout: .seconds(60), headerTimeout: .seconds(10))
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(counter)
        try sync.addHandler(deadlines)
        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try sync.addHandler(RequestSequencer(wholeAnswers: true))
        try sync.addHandler(DecisionHandler(environment: Self.environment, deadlines: deadlines))
        return channel
    }

    static func ask(_ uri: String, id: String) -> ByteBuffer {
        ByteBuffer(
            string: "GET /auth HTTP/1.1\r\nX-Original-Method: GET\r\nX-Original-URI: \(uri)\r\nX-Original-Host: a\r\n"
                + "X-Request-Id: \(id)\r\n\r\n")
    }

    /// The status and request id of each answer written, in order.
    static func answers(_ channel: EmbeddedChannel) throws -> [String] {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text.split(separator: "HTTP/1.1 ").map { answer in
            let id = answer.split(separator: "\r\n").first { $0.hasPrefix("X-Request-Id: ") }?.dropFirst(14) ?? "-"
            return "\(answer.prefix(3)) \(id)"
        }
    }

    @Test("requests wait while the proxy is not reading its answers, and are answered in order after")
    func waitsForWritability() throws {
        let counter = ReadCounter()
        let channel = try Self.channel(counter: counter)
        channel.isWritable = false
        try channel.writeInbound(Self.ask("/open", id: "one"))
        try channel.writeInbound(Self.ask("/closed", id: "two"))
        #expect(try Self.answers(channel).isEmpty)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try Self.answers(channel) == ["200 one", "401 two"])
        // And the next one is answered at once.
        try channel.writeInbound(Self.ask("/open", id: "three"))
        #expect(try Self.answers(channel) == ["200 three"])
        _ = try? channel.finish()
    }

    @Test("reading stops while the waiting limit is reached, and resumes once the waiting are answered")
    func holdsReads() throws {
        let counter = ReadCounter()
        let channel = try Self.channel(counter: counter)
        channel.isWritable = false
        for index in 0..<RequestSequencer.waitingLimit { try channel.writeInbound(Self.ask("/open", id: "r\(index)")) }
        let before = counter.reads
        channel.read()
        #expect(counter.reads == before, "a read while the limit is reached is held back")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try Self.answers(channel) == (0..<RequestSequencer.waitingLimit).map { "200 r\($0)" })
        #expect(counter.reads == before + 1, "the held read is made once the requests are answered")
        _ = try? channel.finish()
    }
}
