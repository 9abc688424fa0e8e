import Foundation
import Logging
import NIOCore
import NIOPosix
import PortcullisUpstream
import Synchronization
import Testing

/// Answers every request head it reads with the same small response, over keep-alive.
private final class FixedAnswer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The requests here are small GETs without a body: each ends with an empty line.
        let bytes = Array(Self.unwrapInboundIn(data).readableBytesView)
        let heads = bytes.indices.dropFirst(3).filter { bytes[($0 - 3)...$0].elementsEqual("\r\n\r\n".utf8) }.count
        for _ in 0..<heads {
            context.write(Self.wrapOutboundOut(context.channel.allocator.buffer(
                string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")), promise: nil)
        }
        context.flush()
    }
}

/// Records, on the curl thread, which thread delivered the exchange's end.
private final class ThreadRecorder: UpstreamResponseHandler, Sendable {
    let outcome = Mutex<(thread: String, status: Int, error: String?)?>(nil)
    private let status = Mutex(0)

    func upstreamResponseHead(_ head: UpstreamResponseHead) { self.status.withLock { $0 = head.status } }
    func upstreamResponseBody(_ bytes: ByteBuffer) {}
    func upstreamWantsRequestBody() {}
    var consumesBodySynchronously: Bool { true }

    func upstreamFinished(_ error: UpstreamError?) {
        let thread = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
        let status = self.status.withLock { $0 }
        self.outcome.withLock { $0 = (thread.trimmingCharacters(in: .whitespacesAndNewlines), status, error.map { "\($0)" }) }
    }
}

@Suite struct CurlPoolTests {
    @Test func eachEventLoopHasAMultiHandleAndThreadOfItsOwn() throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let other = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = CurlPool(eventLoops: Array(loops.makeIterator()), logger: Logger(label: "test"))
        defer {
            pool.shutdown()
            try? loops.syncShutdownGracefully()
            try? other.syncShutdownGracefully()
        }
        let all = Array(loops.makeIterator())
        let (first, second) = (all[0], all[1])
        #expect(pool.count == 2)
        #expect(pool.multi(for: first).threadName == "curl-1")
        #expect(pool.multi(for: second).threadName == "curl-2")
        #expect(pool.multi(for: first) !== pool.multi(for: second))
        // A loop the pool was not made with gets the first loop's handle.
        #expect(pool.multi(for: other.next()) === pool.shared)
        #expect(pool.shared === pool.multi(for: first))
    }

    @Test func anExchangeRunsOnTheCurlThreadOfTheLoopThatStartedIt() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = CurlPool(eventLoops: Array(loops.makeIterator()), logger: Logger(label: "test"))
        let server = try await ServerBootstrap(group: loops)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FixedAnswer()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { pool.shutdown() }
        let port = try #require(server.localAddress?.port)
        for (index, loop) in Array(loops.makeIterator()).enumerated() {
            let recorder = ThreadRecorder()
            let request = UpstreamRequest(
                url: "http://127.0.0.1:\(port)/", method: "GET", headers: UpstreamHeaderLines(), body: .none,
                connectTimeoutMilliseconds: 2_000, timeoutMilliseconds: 5_000)
            _ = pool.multi(for: loop).start(request, handler: recorder)
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            while recorder.outcome.withLock({ $0 == nil }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let outcome = try #require(recorder.outcome.withLock { $0 })
            #expect(outcome.error == nil)
            #expect(outcome.status == 200)
            #expect(outcome.thread == "curl-\(index + 1)")
        }
        try await server.close()
        try await loops.shutdownGracefully()
    }
}
