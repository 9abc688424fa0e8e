import ArgumentParser
import PortcullisCore
import PortcullisServer

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint an access token with the configured signing key (for development and tests).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "The token's subject (sub).")
    var sub: String

    @Option(name: .long, help: "Space-separated scopes.")
    var scope: String = ""

    @Option(name: .long, help: "Lifetime, such as 30m (default: token_endpoint.access_token_ttl).")
    var ttl: String?

    @Flag(name: .long, help: "Mint a token that has already expired, jwt.leeway included (to try the 401 path).")
    var expired = false

    func run() throws {
        var ttlSeconds: Int64?
        if let ttl = self.ttl {
            guard let milliseconds = ScalarParsers.duration(ttl), milliseconds > 0 else {
                throw ValidationError("--ttl must be a duration such as 30s, 30m or 2h")
            }
            guard milliseconds <= ScalarParsers.maximumDuration else {
                throw ValidationError("--ttl must be at most 3650d")
            }
            ttlSeconds = max(1, milliseconds / 1000)
        }
        let result = self.options.load()
        guard let config = result.config else {
            for diagnostic in result.diagnostics.errors { printError(diagnostic.description) }
            throw ExitCode(2)
        }
        guard let endpoint = config.tokenEndpoint else {
            printError("\(self.options.path): no signing key: configure token_endpoint.signing_key")
            throw ExitCode(2)
        }
        // A token the gateway would refuse is no use to anyone: say so instead of minting it.
        guard BearerVerifier.subjectFitsAHeader(self.sub) else {
            throw ValidationError("--sub must be non-empty UTF-8 without control characters or surrounding spaces")
        }
        let scopes = self.scope.split(separator: " ").map(String.init)
        if let bad = scopes.first(where: { !BearerVerifier.isScopeToken($0) }) {
            throw ValidationError("--scope: '\(bad)' is not a valid scope (RFC 6749 §3.3)")
        }
        let lifetime = ttlSeconds ?? max(1, endpoint.accessTokenTTL / 1000)
        var issuedAt = WallClock.now()
        if self.expired {
            // Issued early enough that `exp` lies beyond the leeway the gateway grants.
            issuedAt -= Double(lifetime) + Double(config.jwt.leeway) / 1000 + 1
        }
        let token = try TokenMinter.mint(endpoint, subject: self.sub, scopes: scopes, ttlSeconds: lifetime, now: issuedAt)
        printOut(token)
    }
}
