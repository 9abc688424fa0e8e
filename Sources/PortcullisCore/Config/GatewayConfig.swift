/// Everything read from one `routes.yaml`, validated. Immutable once built.
package struct GatewayConfig: Sendable {
    package var file: String
    package var server: ServerConfig
    package var jwt: JWTConfig
    package var users: [UserConfig]
    package var apiKeys: [APIKeyConfig]
    package var tokenEndpoint: TokenEndpointConfig?
    package var upstreams: [String: UpstreamConfig]
    package var routes: [RouteConfig]
    /// The decision service (`decisions:`), when configured.
    package var decisions: DecisionsConfig? = nil
}

package struct ServerConfig: Sendable {
    /// `nil` when the public listener is disabled (`listen: ""`, a decision-only deployment).
    package var listen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 8080)
    /// `nil` when the admin listener is disabled (`admin_listen: ""`).
    package var adminListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9901)
    package var realm: String = "portcullis"
    package var maxRequestBody: Int = 10 << 20
    package var idleTimeout: Milliseconds = 60_000
    package var requestHeaderTimeout: Milliseconds = 10_000
    package var shutdownGrace: Milliseconds = 10_000
    package var mergeSlashes: Bool = true
    package var trustedProxies: [CIDR] = []
    package var insufficientScopeStatus: Int = 403
    package var identityHeaders = IdentityHeaders()
    /// `claim_headers`: claims forwarded as headers, in the order written.
    package var claimHeaders: [ClaimHeader] = []
    package var accessLog: AccessLogTarget = .stdout
    package var dryRun: Bool = false
    package var tls: TLSFiles?

    package init() {}
}

package struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    package var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

package struct IdentityHeaders: Sendable {
    package var subject = "X-Auth-Subject"
    package var scopes = "X-Auth-Scopes"
    package var method = "X-Auth-Method"
    package var roles = "X-Auth-Roles"

    package var all: [String] { [self.subject, self.scopes, self.method, self.roles] }

    /// Lower-case names an identity header may not take: framing and connection headers, the
    /// ones that route or carry credentials, and the ones the gateway writes itself.
    package static let reservedNames: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
        "proxy-connection", "proxy-authorization", "proxy-authenticate", "expect", "content-type", "content-encoding",
        "authorization", "cookie", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "x-real-ip", "x-request-id",
    ]
}

/// One `claim_headers` entry: the header `name` carries the claim at `path`.
package struct ClaimHeader: Sendable, Hashable {
    package var name: String
    package var path: ClaimPath

    package init(name: String, path: ClaimPath) {
        self.name = name
        self.path = path
    }
}

package enum AccessLogTarget: Hashable, Sendable {
    case stdout
    case off
    case file(String)
}

package struct TLSFiles: Hashable, Sendable {
    package var certFile: String
    package var keyFile: String

    package init(certFile: String, keyFile: String) {
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

package struct UpstreamConfig: Sendable {
    package enum Target: Hashable, Sendable {
        /// `scheme://authority`, ready to have a path appended.
        case http(origin: String, basePath: String)
        /// `unix:/path/to.sock`; requests are sent as `http://localhost`.
        case unixSocket(path: String)
    }

    package var name: String
    package var url: String
    package var target: Target
    package var connectTimeout: Milliseconds = 2_000
    package var timeout: Milliseconds = 30_000
    package var preserveHost: Bool = true
    package var tls: UpstreamTLS?
    package var location: SourceLocation
}

package struct UpstreamTLS: Hashable, Sendable {
    package var caFile: String?
    package var clientCertFile: String?
    package var clientKeyFile: String?
}

package enum AuthScheme: String, Hashable, Sendable, CaseIterable {
    case bearer
    case basic
    case apiKey = "api_key"
}

package enum RouteAuth: Hashable, Sendable {
    case none
    case optional
    /// One or more schemes; any one of them admits the request.
    case required([AuthScheme])
}

package enum RouteMode: String, Hashable, Sendable {
    case enforce
    case dryRun = "dry-run"
}

package struct RouteConfig: Sendable {
    package var name: String
    package var location: SourceLocation
    package var path: PathPattern
    package var methods: MethodSet
    package var hosts: [HostPattern]
    package var auth: RouteAuth
    package var scopes: [String]
    package var scopesAny: [String]
    /// `nil` for a route only the decision service answers (allowed when `decisions` is set).
    package var upstream: String?
    package var stripPrefix: String?
    package var forwardAuthorization: Bool?
    package var mode: RouteMode
    /// Only tokens of these issuers; empty: any configured issuer.
    package var issuers: [String] = []
    /// All of these roles.
    package var roles: [String] = []
    /// At least one of these roles.
    package var rolesAny: [String] = []
    /// Every condition must hold.
    package var claims: [ClaimCondition] = []
    package var cors: CORSConfig?
}

/// A route's `cors`: browser preflights answered before authentication, and the CORS headers
/// on every answer for the listed origins.
package struct CORSConfig: Sendable {
    /// Origins as the browser sends them (`https://app.example`), or `["*"]`.
    package var allowOrigins: [String]
    package var allowMethods: [String]
    package var allowHeaders: [String]
    package var maxAge: Milliseconds?

    package init(allowOrigins: [String], allowMethods: [String], allowHeaders: [String], maxAge: Milliseconds?) {
        self.allowOrigins = allowOrigins
        self.allowMethods = allowMethods
        self.allowHeaders = allowHeaders
        self.maxAge = maxAge
    }

    package var allowsAnyOrigin: Bool { self.allowOrigins == ["*"] }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, or `nil` when the
    /// origin is not listed.
    package func allowOrigin(for origin: String) -> String? {
        if self.allowsAnyOrigin { return "*" }
        return self.allowOrigins.contains(origin) ? origin : nil
    }
}
