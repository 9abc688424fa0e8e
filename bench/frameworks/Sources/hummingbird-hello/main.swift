// Minimal HTTP/1.1 server on Hummingbird 2: a catch-all GET route returns 200 + a fixed JSON body.
// Usage: hummingbird-hello PORT
// Event loop threads: System.coreCount, as in nio-hello (one thread under `taskset -c 1`).
import HelloPayload
import Hummingbird
import Logging
import NIOCore
import NIOPosix

let body = ByteBuffer(string: helloJSON)
let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8080
let threads = System.coreCount

@Sendable func hello(_: Request, _: BasicRequestContext) -> Response {
    // Content-Length is set from the ByteBuffer body; Hummingbird itself adds a cached Date header.
    Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
}

let router = Router()
router.get("/", use: hello)
router.get("**", use: hello)  // "**" matches one or more path components

var logger = Logger(label: "hummingbird-hello")
logger.logLevel = .error

let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port)),
    eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup(numberOfThreads: threads)),
    logger: logger
)
print("hummingbird-hello listening on 127.0.0.1:\(port) with \(threads) event loop thread(s)")
try await app.runService()
