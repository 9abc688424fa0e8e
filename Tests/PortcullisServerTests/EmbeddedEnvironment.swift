import Logging
import NIOEmbedded
import PortcullisCore
@testable import PortcullisServer
import PortcullisUpstream

extension GatewayEnvironment {
    /// The environment of a gateway serving `config`, for handlers on an `EmbeddedChannel`: an
    /// embedded event loop, no access log, one hashing thread.
    static func embedded(config text: String, variables: [String: String] = [:]) -> GatewayEnvironment {
        let loaded = ConfigLoader.load(text: text, file: "routes.yaml", environment: FixedEnvironment(variables: variables))
        guard let config = loaded.config else { fatalError("\(loaded.diagnostics)") }
        let logger = Logger(label: "test")
        let loop = EmbeddedEventLoop()
        return try! GatewayEnvironment(
            policies: PolicyStore(Policy(config: config)), curl: CurlPool(eventLoops: [loop], logger: logger), logger: logger,
            accessLog: nil, hashThreads: 1, group: loop)
    }
}
