import Foundation
import PortcullisCore
import Testing

/// Checks across sections see every section, wherever in the file it is written.
@Suite("Checks across sections")
struct ConfigValidatorTests {
    static let environment = FixedEnvironment(variables: ["S": "0123456789abcdef0123456789abcdef"])

    /// The sections of one file, keyed by name, in the order given.
    static func file(_ sections: [String]) -> String {
        "version: 1\n" + sections.joined(separator: "\n") + "\n"
    }

    static let jwt = """
        jwt:
          issuers:
            - { issuer: "https://gw", algorithms: [HS256], keys: [ { kid: k, secret_env: S } ], roles_claims: [roles] }
        """
    static let upstreams = """
        upstreams:
          items: { url: "http://127.0.0.1:1" }
        """
    static let tokenEndpoint = """
        token_endpoint: { issuer: "https://gw", signing_key: { alg: HS256, kid: k, secret_env: S } }
        """
    static let routes = """
        routes:
          - { name: me, match: { path: /me }, issuers: ["https://gw"], roles: [admin], upstream: items }
        """

    func messages(_ sections: [String]) -> [String] {
        let result = ConfigLoader.load(text: Self.file(sections), file: "c.yaml", environment: Self.environment)
        return result.diagnostics.all.map { "\($0.severity): \($0.message)" }.sorted()
    }

    @Test("a route may name an upstream and an issuer declared after it")
    func referencesDeclaredLater() throws {
        let text = Self.file([Self.routes, Self.tokenEndpoint, Self.upstreams, Self.jwt])
        let result = ConfigLoader.load(text: text, file: "c.yaml", environment: Self.environment)
        let config = try #require(result.config, "\(result.diagnostics)")
        #expect(config.routes.first?.upstream == "items")
        #expect(config.routes.first?.issuers == ["https://gw"])
        #expect(result.diagnostics.all.isEmpty, "\(result.diagnostics)")
    }

    @Test("the findings are the same in whatever order the sections are written")
    func orderIndependent() {
        let broken = [
            Self.jwt.replacingOccurrences(of: "roles_claims: [roles] ", with: ""),
            Self.upstreams.replacingOccurrences(of: "items:", with: "itemz:"),
            Self.tokenEndpoint.replacingOccurrences(of: "kid: k,", with: "kid: other,"),
            Self.routes.replacingOccurrences(of: "https://gw\"]", with: "https://gw\", \"https://gx\"]"),
        ]
        let forward = self.messages(broken)
        #expect(forward == self.messages(broken.reversed()))
        #expect(
            forward == [
                "error: route 'me' names the unknown issuer 'https://gx'; did you mean 'https://gw'?",
                "error: route 'me' names the unknown upstream 'items'; did you mean 'itemz'?",
                "error: token_endpoint.signing_key: the gateway would refuse its own tokens (the access token key id is unknown for issuer 'https://gw'); give it the kid, algorithm and key of an entry of that issuer",
                "warning: route 'me' requires roles, but no issuer it accepts has roles_claims: the route can never be passed",
            ])
    }

    @Test("listeners that share a port are found whichever section comes first")
    func listenerClash() {
        let server = "server:\n  listen: \"127.0.0.1:8080\"\n  admin_listen: \"\""
        let decisions = "decisions:\n  listen: \"localhost:8080\"\n  request_from: original"
        let routes = "routes: []"
        let expected = ["error: decisions.listen localhost:8080 would take the port of server.listen 127.0.0.1:8080"]
        #expect(self.messages([server, decisions, routes]) == expected)
        #expect(self.messages([decisions, routes, server]) == expected)
    }

    @Test("a token endpoint whose issuer is missing from jwt.issuers is found before or after jwt")
    func tokenEndpointIssuer() {
        let endpoint = Self.tokenEndpoint.replacingOccurrences(of: "issuer: \"https://gw\"", with: "issuer: \"https://other\"")
        let expected = [
            "error: token_endpoint.issuer 'https://other' must also be listed under jwt.issuers, or its tokens cannot be verified"
        ]
        #expect(self.messages([endpoint, Self.jwt, Self.upstreams, "routes: []"]) == expected)
        #expect(self.messages([Self.jwt, "routes: []", Self.upstreams, endpoint]) == expected)
    }
}
