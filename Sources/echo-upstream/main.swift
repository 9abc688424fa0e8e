// A small upstream for demos, tests and benchmarks: answers every request with a JSON
// description of what it received (method, path, query, headers, body length).
//
// A few query parameters change the answer, for tests of the gateway's failure handling:
//   echo_status=N      answer with status N
//   echo_bytes=N       answer with N bytes of body (streamed in 64 KiB chunks) instead of JSON
//   echo_delay_ms=N    wait N ms before answering
//   echo_cookies=N     add N Set-Cookie headers
//   echo_close=1       close the connection without answering
//   echo_fail_mid=1    with echo_bytes: close the connection after the first chunk
// Every answer carries X-Echo-Connection (this connection's serial number) so tests can see
// keep-alive reuse.
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

let connectionCounter = Atomic<Int>(0)

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var bodyLength = 0
    private let connection: Int

    init(connection: Int) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.bodyLength = 0
        case .body(let buffer):
            self.bodyLength += buffer.readableBytes
        case .end:
            guard let head = self.head else { return }
            self.respond(head, context: context)
        }
    }

    private func respond(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (path, query) = split(head.uri)
        let options = parameters(query)
        if options["echo_close"] != nil {
            context.close(promise: nil)
            return
        }
        let delay = options["echo_delay_ms"].flatMap { Int64($0) } ?? 0
        let send = { [self] in self.send(head, path: path, query: query, options: options, context: context) }
        if delay > 0 {
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) { send() }
        } else {
            send()
        }
    }

    private func send(_ head: HTTPRequestHead, path: String, query: String?, options: [String: String], context: ChannelHandlerContext) {
        // Final statuses only: an informational one is not an answer, and NIO refuses to frame it.
        let code = options["echo_status"].flatMap { Int($0) }.flatMap { (200...599).contains($0) ? $0 : nil } ?? 200
        let status = HTTPResponseStatus(statusCode: code)
        var headers = HTTPHeaders()
        headers.add(name: "X-Echo-Connection", value: String(self.connection))
        for index in 0..<(options["echo_cookies"].flatMap { Int($0) } ?? 0) {
            headers.add(name: "Set-Cookie", value: "c\(index)=v\(index); Path=/")
        }
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        if let total = options["echo_bytes"].flatMap({ Int($0) }), head.method != .HEAD {
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(total))
            context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            let failMid = options["echo_fail_mid"] != nil
            self.stream(remaining: total, failMid: failMid, keepAlive: head.isKeepAlive, context: context)
            return
        }
        var json = "{\"method\":\(quote(head.method.rawValue)),\"path\":\(quote(path)),\"query\":"
        json += query.map(quote) ?? "null"
        json += ",\"headers\":["
        json += head.headers.map { "[\(quote($0.name)),\(quote($0.value))]" }.joined(separator: ",")
        json += "],\"body_length\":\(self.bodyLength),\"connection\":\(self.connection)}"
        let body = context.channel.allocator.buffer(string: json)
        headers.add(name: "Content-Type", value: "application/json")
        if status.mayHaveResponseBody {
            headers.add(name: "Content-Length", value: String(body.readableBytes))
        }
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if status.mayHaveResponseBody && head.method != .HEAD {
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    /// Streams `remaining` bytes, waiting for each chunk to be written before the next, so a
    /// slow reader is never buffered for.
    private func stream(remaining: Int, failMid: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        if remaining == 0 {
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
            return
        }
        let size = min(remaining, 64 << 10)
        let chunk = context.channel.allocator.buffer(repeating: UInt8(ascii: "x"), count: size)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(chunk)))).assumeIsolated().whenComplete { result in
            guard case .success = result else { return }
            if failMid {
                context.close(promise: nil)
                return
            }
            self.stream(remaining: remaining - size, failMid: false, keepAlive: keepAlive, context: context)
        }
    }
}

/// Writes a line to standard output unbuffered, so a parent process sees it at once.
func say(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
}

func split(_ uri: String) -> (String, String?) {
    guard let mark = uri.firstIndex(of: "?") else { return (uri, nil) }
    return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
}

func parameters(_ query: String?) -> [String: String] {
    var result: [String: String] = [:]
    for pair in (query ?? "").split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1)
        if parts.count == 2, parts[0].hasPrefix("echo_") { result[String(parts[0])] = String(parts[1]) }
    }
    return result
}

func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if scalar.value < 0x20 {
                out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

// Arguments: --listen HOST:PORT (default 127.0.0.1:9001), or --unix PATH. Port 0 picks a free
// port; the address is printed as "listening on HOST:PORT" either way.
var listen = "127.0.0.1:9001"
var unixPath: String?
var threads = 1
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--listen": listen = arguments.popFirst() ?? listen
    case "--unix": unixPath = arguments.popFirst()
    case "--threads": threads = arguments.popFirst().flatMap { Int($0) } ?? threads
    default:
        print("usage: echo-upstream [--listen HOST:PORT | --unix PATH] [--threads N]")
        exit(2)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            let serial = connectionCounter.add(1, ordering: .relaxed).newValue
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(EchoHandler(connection: serial))
        }
    }
let channel: any Channel
if let unixPath {
    channel = try bootstrap.bind(unixDomainSocketPath: unixPath, cleanupExistingSocketFile: true).wait()
    say("listening on unix:\(unixPath)")
} else {
    let colon = listen.lastIndex(of: ":")!
    let host = String(listen[..<colon].filter { $0 != "[" && $0 != "]" })
    let port = Int(listen[listen.index(after: colon)...])!
    channel = try bootstrap.bind(host: host, port: port).wait()
    say("listening on \(host):\(channel.localAddress!.port!)")
}
try channel.closeFuture.wait()
