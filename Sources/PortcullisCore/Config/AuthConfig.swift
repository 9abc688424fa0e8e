package import PortcullisCrypto

/// The `jwt` section: how Bearer tokens are verified.
package struct JWTConfig: Sendable {
    package var leeway: Milliseconds = 30_000
    package var scopeClaims: [String] = ["scope", "scp"]
    package var cacheSize: Int = 10_000
    package var issuers: [IssuerConfig] = []

    package init() {}
}

/// One trusted token issuer, with its pinned algorithms and keys.
package struct IssuerConfig: Sendable {
    package var issuer: String
    package var audiences: [String]
    package var algorithms: [JWSAlgorithm]
    /// Keys from `keys` and `jwks_file`, loaded with the configuration.
    package var keys: [IssuerKey]
    package var jwksURL: String?
    package var jwksRefresh: Milliseconds
    package var location: SourceLocation
    /// `scope_claims` of this issuer, overriding `jwt.scope_claims`.
    package var scopeClaims: [ClaimPath]?
    /// `roles_claims`: every present path adds its roles.
    package var rolesClaims: [ClaimPath] = []
    /// `discovery: true`: the key set's URL comes from the OpenID Connect discovery document.
    package var discovery = false

    /// Where the discovery document is: `{issuer}/.well-known/openid-configuration`.
    package var discoveryURL: String {
        var base = self.issuer
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/.well-known/openid-configuration"
    }
}

/// One verification key of an issuer.
package struct IssuerKey: Sendable {
    package var kid: String?
    /// Pinned by a JWK's own `alg`, if it had one.
    package var algorithm: JWSAlgorithm?
    package var key: JWSKey
    /// Where the key came from, for traces: `secret_env PORTCULLIS_JWT_SECRET`, `jwks_file keys/jwks.json`.
    package var source: String

    package init(kid: String?, algorithm: JWSAlgorithm?, key: JWSKey, source: String) {
        self.kid = kid
        self.algorithm = algorithm
        self.key = key
        self.source = source
    }
}

/// A local account (`users`).
package struct UserConfig: Sendable {
    package var username: String
    package var passwordHash: String
    package var scopes: [String]
    package var disabled: Bool
    package var fullName: String?
    package var email: String?
}

/// The parts of `token_endpoint` this version uses: the issuer and how to sign its tokens.
package struct TokenEndpointConfig: Sendable {
    package var path: String
    package var issuer: String
    package var audience: String?
    package var signingAlgorithm: JWSAlgorithm
    package var signingKID: String
    package var signingKey: JWSKey
    package var accessTokenTTL: Milliseconds
    package var maxConcurrentHashes: Int
    package var location: SourceLocation
    /// `0` disables refresh tokens.
    package var refreshTokenTTL: Milliseconds = 14 * 86_400_000
    /// Declared scopes and their descriptions; when non-empty, only these can be granted.
    package var scopes: [(name: String, description: String)] = []
    package var defaultScopes: [String] = []
    package var requireGrantType = false
    package var clients: [ClientConfig] = []
    package var requireClientAuth = false
    /// `sqlite:PATH` (resolved), `postgresql://…` or `memory:`.
    package var store: RefreshStoreLocation = .memory
    package var throttleMaxFailures = Self.defaultThrottleMaxFailures
    package var throttleWindow: Milliseconds = Self.defaultThrottleWindow
    /// `login_throttle`'s defaults, which also hold for Basic routes and API keys when the
    /// configuration has no token endpoint.
    package static let defaultThrottleMaxFailures = 5
    package static let defaultThrottleWindow: Milliseconds = 300_000
}

package struct ClientConfig: Sendable {
    package var clientID: String
    package var secretHash: String
}

package enum RefreshStoreLocation: Sendable, Hashable {
    case memory
    case sqlite(path: String)
    /// Shared by every replica that names it: refresh tokens and login-throttle counters.
    case postgresql(PostgresStoreSettings)
}

/// One API key (`api_keys`).
package struct APIKeyConfig: Sendable {
    package enum Hash: Sendable {
        /// `sha256:<hex>`: the SHA-256 of the key's UTF-8 bytes, for high-entropy keys.
        case sha256([UInt8])
        /// An Argon2 PHC string, for keys people chose.
        case argon2(String)
    }

    package enum Location: String, Sendable, Hashable {
        case header
        case query
        case cookie
    }

    package var name: String
    package var hash: Hash
    package var scopes: [String]
    package var location: Location
    package var param: String
}
