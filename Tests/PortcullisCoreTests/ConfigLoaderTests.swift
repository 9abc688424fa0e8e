import PortcullisCore
import Testing

@Suite("Configuration loading")
struct ConfigLoaderTests {
    static let valid = """
        version: 1
        server:
          listen: "127.0.0.1:8080"
          max_request_body: 512KiB
          idle_timeout: 90s
          trusted_proxies: ["10.0.0.0/8", "::1"]
        upstreams:
          items:
            url: "http://127.0.0.1:9001/base/"
          sock:
            url: "unix:/run/app.sock"
        routes:
          - name: status
            match: { path: /status, methods: [GET] }
            auth: none
            upstream: items
          - name: admin
            match: { path: "/admin/**", hosts: ["admin.example.com"] }
            auth: [bearer, basic]
            scopes_any: [admin, ops]
            upstream: sock
            strip_prefix: /admin
        """

    @Test("a valid file loads with its values")
    func loadsValid() throws {
        let result = ConfigLoader.load(text: Self.valid, file: "routes.yaml")
        let config = try #require(result.config, "\(result.diagnostics)")
        #expect(result.diagnostics.errors.isEmpty)
        #expect(config.server.maxRequestBody == 512 * 1024)
        #expect(config.server.idleTimeout == 90_000)
        #expect(config.server.trustedProxies.count == 2)
        #expect(config.upstreams["items"]?.target == .http(origin: "http://127.0.0.1:9001", basePath: "/base"))
        #expect(config.upstreams["sock"]?.target == .unixSocket(path: "/run/app.sock"))
        #expect(config.routes.map(\.name) == ["status", "admin"])
        #expect(config.routes[1].auth == .required([.bearer, .basic]))
        #expect(config.routes[1].location.line == 17)
        #expect(config.routes[0].methods.contains("HEAD"))
    }

    /// Each case: a YAML text with one mistake, and the `LINE:COL: error:` fragment expected.
    static let broken: [(String, String, String)] = [
        ("unknown key", "version: 1\nupstreams: {}\nroutes: []\nservr: {}\n", "4:1: error: unknown key 'servr' in the configuration; did you mean 'server'?"),
        ("bad duration", "version: 1\nserver:\n  idle_timeout: 10 seconds\nupstreams: {}\nroutes: []\n", "3:17: error: server.idle_timeout"),
        ("bad size", "version: 1\nserver:\n  max_request_body: 10MB\nupstreams: {}\nroutes: []\n", "3:21: error: server.max_request_body"),
        ("wrong type", "version: 1\nserver:\n  merge_slashes: yes\nupstreams: {}\nroutes: []\n", "3:18: error: server.merge_slashes must be true or false"),
        ("unknown upstream", "version: 1\nupstreams:\n  items: { url: \"http://127.0.0.1:1\" }\nroutes:\n  - name: a\n    match: { path: /a }\n    auth: none\n    upstream: itms\n", "8:15: error: route 'a' names the unknown upstream 'itms'; did you mean 'items'?"),
        ("duplicate route", "version: 1\nupstreams:\n  u: { url: \"http://127.0.0.1:1\" }\nroutes:\n  - { name: a, match: { path: /a }, auth: none, upstream: u }\n  - { name: a, match: { path: /b }, auth: none, upstream: u }\n", "6:13: error: duplicate route name 'a'"),
        ("bad auth", "version: 1\nupstreams:\n  u: { url: \"http://127.0.0.1:1\" }\nroutes:\n  - { name: a, match: { path: /a }, auth: bearr, upstream: u }\n", "5:43: error: route 'a' auth must be one of"),
        ("syntax", "version: 1\nroutes: [\n", "error: YAML syntax"),
        ("missing version", "upstreams: {}\nroutes: []\n", "1:1: error: the configuration is missing the required key 'version'"),
        ("duplicate key", "version: 1\nversion: 1\nupstreams: {}\nroutes: []\n", "2:1: error: duplicate key 'version'"),
        ("duplicate keys", "version: 1\nserver:\n  listen: \"127.0.0.1:1\"\n  realm: R\n  listen: \"127.0.0.1:2\"\n  realm: S\nupstreams: {}\nroutes: []\n",
         "5:3: error: duplicate key 'listen' in a mapping (first at line 3)\nbad.yaml:6:3: error: duplicate key 'realm' in a mapping (first at line 4)"),
        ("lower-case method", "version: 1\nupstreams:\n  u: { url: \"http://127.0.0.1:1\" }\nroutes:\n  - { name: a, match: { path: /a, methods: [get] }, auth: none, upstream: u }\n", "5:45: error: method 'get' must be upper-case"),
        ("bad pattern", "version: 1\nupstreams:\n  u: { url: \"http://127.0.0.1:1\" }\nroutes:\n  - { name: a, match: { path: \"/a/**/b\" }, auth: none, upstream: u }\n", "5:31: error: route 'a': bad path pattern"),
        ("bad upstream url", "version: 1\nupstreams:\n  u: { url: \"ftp://x\" }\nroutes: []\n", "3:13: error: upstream 'u'"),
    ]

    @Test("mistakes are reported with line and column", arguments: Self.broken)
    func reportsErrors(_ name: String, _ yaml: String, _ expected: String) {
        let result = ConfigLoader.load(text: yaml, file: "bad.yaml")
        #expect(result.config == nil, "\(name) was accepted")
        let printed = result.diagnostics.description
        #expect(printed.contains("bad.yaml:"), "\(name): \(printed)")
        #expect(printed.contains(expected), "\(name): \(printed)")
    }

    @Test("a route shadowed by an earlier one is a warning, not an error")
    func shadowing() throws {
        let yaml = """
            version: 1
            upstreams:
              u: { url: "http://127.0.0.1:1" }
            routes:
              - { name: all, match: { path: "/api/**" }, auth: none, upstream: u }
              - { name: users, match: { path: "/api/users/{id}", methods: [GET] }, auth: bearer, upstream: u }
              - { name: other, match: { path: "/other" }, auth: none, upstream: u }
            """
        let result = ConfigLoader.load(text: yaml, file: "r.yaml")
        #expect(result.config != nil)
        // The file has no issuer, which its bearer route is warned about too.
        let warnings = result.diagnostics.warnings.filter { $0.code == .shadowedRoute }
        #expect(warnings.count == 1)
        #expect(warnings.first?.description.hasPrefix("r.yaml:6:7: warning: route 'users' can never match") == true)
    }
}

@Suite("Semantic checks")
struct SemanticCheckTests {
    static let base = """
        version: 1
        jwt:
          issuers:
            - { issuer: "https://gw", algorithms: [HS256], keys: [ { kid: k, secret_env: S } ] }
        token_endpoint: { issuer: "https://gw", signing_key: { alg: HS256, kid: k, secret_env: S } }
        users:
          - { username: a, password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", scopes: [read] }
        upstreams: { u: { url: "http://127.0.0.1:1" } }
        routes:

        """
    static let environment = FixedEnvironment(variables: ["S": "0123456789abcdef0123456789abcdef"])

    func warnings(_ routes: String) throws -> [String] {
        let result = ConfigLoader.load(text: Self.base + routes, file: "c.yaml", environment: Self.environment)
        _ = try #require(result.config, "\(result.diagnostics)")
        return result.diagnostics.warnings.map(\.message)
    }

    @Test("a public route sharing paths with a protected one is flagged")
    func openOverlap() throws {
        let found = try self.warnings("""
              - { name: pub, match: { path: "/api/*/public" }, auth: none, upstream: u }
              - { name: api, match: { path: "/api/**" }, scopes: [read], upstream: u }
            """)
        #expect(found.contains { $0.contains("route 'pub' has auth: none and shares paths with the protected route 'api'") })
        let disjoint = try self.warnings("""
              - { name: pub, match: { path: "/public/**" }, auth: none, upstream: u }
              - { name: api, match: { path: "/api/**" }, scopes: [read], upstream: u }
            """)
        #expect(disjoint.isEmpty)
    }

    @Test("scopes nobody can hold are flagged unless an external issuer could carry them")
    func unreachableScopes() throws {
        let found = try self.warnings("""
              - { name: api, match: { path: "/api/**" }, scopes: [read, write], upstream: u }
            """)
        #expect(found == ["route 'api' requires scopes no user, API key or external issuer can hold: write"])
    }

    @Test("a route no credential can pass is flagged, naming each scheme that cannot be satisfied")
    func unusableSchemes() throws {
        let yaml = """
            version: 1
            upstreams: { u: { url: "http://127.0.0.1:1" } }
            routes:
              - { name: bearer, match: { path: "/b" }, upstream: u }
              - { name: either, match: { path: "/e" }, auth: [basic, api_key], upstream: u }
              - { name: open, match: { path: "/o" }, auth: optional, upstream: u }
            """
        let result = ConfigLoader.load(text: yaml, file: "c.yaml")
        _ = try #require(result.config, "\(result.diagnostics)")
        #expect(
            result.diagnostics.warnings.map(\.message) == [
                "route 'bearer' refuses every request: no issuer is configured for Bearer tokens (jwt.issuers)",
                "route 'either' refuses every request: no user is configured for Basic (users); no API key is configured (api_keys)",
            ])
        // With an issuer, a user and a key, every scheme can be satisfied.
        #expect(try self.warnings("""
              - { name: bearer, match: { path: "/b" }, scopes: [read], upstream: u }
              - { name: basic, match: { path: "/c" }, auth: basic, upstream: u }
            """).isEmpty)
    }

    @Test("pattern overlap")
    func overlap() throws {
        func overlaps(_ a: String, _ b: String) throws -> Bool {
            try PathPattern(a, mergeSlashes: true).overlaps(PathPattern(b, mergeSlashes: true))
        }
        #expect(try overlaps("/a/*", "/a/b"))
        #expect(try overlaps("/a/**", "/*/c"))
        #expect(try overlaps("/a", "/a/**"))
        #expect(try !overlaps("/a/b", "/a/c"))
        #expect(try !overlaps("/a/*", "/a"))
        #expect(try !overlaps("/a/*/c", "/a/b"))
    }
}
