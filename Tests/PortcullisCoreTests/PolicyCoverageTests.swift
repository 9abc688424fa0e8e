import PortcullisCore
import Testing

@Suite("Which route outcomes policy cases reach")
struct PolicyCoverageTests {
    static let environment = FixedEnvironment(variables: ["S": "0123456789abcdef0123456789abcdef"])

    static func config(insufficientScopeStatus: Int = 403) throws -> GatewayConfig {
        let yaml = """
            version: 1
            server: { realm: "api", insufficient_scope_status: \(insufficientScopeStatus) }
            jwt:
              issuers:
                - { issuer: "https://gw", audiences: [api], algorithms: [HS256], keys: [ { kid: k, secret_env: S } ] }
            token_endpoint: { issuer: "https://gw", audience: api, signing_key: { alg: HS256, kid: k, secret_env: S }, store: "memory:" }
            upstreams: { u: { url: "http://127.0.0.1:1" } }
            routes:
              - { name: open, match: { path: /open }, auth: none, upstream: u }
              - { name: maybe, match: { path: /maybe }, auth: optional, upstream: u }
              - { name: read, match: { path: /read }, scopes: [read], upstream: u }
              - { name: either, match: { path: /either }, auth: [bearer, basic], scopes_any: [read, write], upstream: u }
              - { name: bare, match: { path: /bare }, auth: bearer, upstream: u }
              - { name: shadow, match: { path: /shadow }, scopes: [read], upstream: u, mode: dry-run }
            """
        let result = ConfigLoader.load(text: yaml, file: "c.yaml", environment: Self.environment)
        return try #require(result.config, "\(result.diagnostics)")
    }

    /// Runs cases written as in a policy test file and returns what each reached.
    static func reaches(_ cases: String, insufficientScopeStatus: Int = 403) throws -> [PolicyCoverage.Reach?] {
        let policy = Policy(config: try Self.config(insufficientScopeStatus: insufficientScopeStatus))
        let loaded = PolicyCaseLoader.load(text: cases, file: "t.yaml", environment: Self.environment)
        #expect(!loaded.diagnostics.hasErrors, "\(loaded.diagnostics)")
        return loaded.cases.map { $0.run(policy, now: 1_800_000_000).reached }
    }

    @Test("each kind of route has the outcomes its rules can give")
    func outcomesPerRoute() throws {
        let outcomes = Dictionary(uniqueKeysWithValues: try Self.config().routes.map { ($0.name, PolicyCoverage.outcomes(of: $0)) })
        #expect(outcomes["open"] == [.allow])
        #expect(outcomes["maybe"] == [.allow, .unauthenticated])
        #expect(outcomes["read"] == [.allow, .unauthenticated, .insufficientScope])
        #expect(outcomes["either"] == [.allow, .unauthenticated, .insufficientScope])
        #expect(outcomes["bare"] == [.allow, .unauthenticated, .insufficientScope], "contract §13: every protected route")
        #expect(outcomes["shadow"] == [.allow, .unauthenticated, .insufficientScope])
    }

    @Test("a decision reaches the outcome of the route it matched")
    func decisions() throws {
        let reached = try Self.reaches("""
            cases:
              - { name: a, request: { path: /open }, expect: { status: 200 } }
              - { name: b, request: { path: /read }, expect: { status: 401 } }
              - { name: c, request: { path: /read }, token: { sub: x, scope: write }, expect: { status: 403 } }
              - { name: d, request: { path: /either }, token: { sub: x, scope: write }, expect: { status: 200 } }
              - { name: e, request: { path: /maybe }, bearer: not.a.token, expect: { status: 401 } }
              - { name: f, request: { path: /nowhere }, expect: { status: 404 } }
              - { name: g, request: { method: BREW, path: /open }, expect: { status: 400 } }
              - { name: h, request: { method: POST, path: /token }, expect: { status: 200 } }
            """)
        #expect(reached == [
            .init(route: "open", outcome: .allow), .init(route: "read", outcome: .unauthenticated),
            .init(route: "read", outcome: .insufficientScope), .init(route: "either", outcome: .allow),
            .init(route: "maybe", outcome: .unauthenticated), nil, nil, nil,
        ])
    }

    @Test("shadow mode counts the answer enforcement would give")
    func shadow() throws {
        let reached = try Self.reaches("""
            cases:
              - { name: a, request: { path: /shadow }, expect: { status: 401 } }
              - { name: b, request: { path: /shadow }, token: { sub: x, scope: other }, expect: { status: 403 } }
              - { name: c, request: { path: /shadow }, token: { sub: x, scope: read }, expect: { status: 200 } }
            """)
        #expect(reached == [
            .init(route: "shadow", outcome: .unauthenticated), .init(route: "shadow", outcome: .insufficientScope),
            .init(route: "shadow", outcome: .allow),
        ])
    }

    @Test("an insufficient-scope refusal is the 403 outcome even when it is sent as 401")
    func insufficientScopeAs401() throws {
        let reached = try Self.reaches("""
            cases:
              - { name: a, request: { path: /read }, token: { sub: x, scope: other }, expect: { status: 401 } }
              - { name: b, request: { path: /read }, expect: { status: 401 } }
            """, insufficientScopeStatus: 401)
        #expect(reached == [.init(route: "read", outcome: .insufficientScope), .init(route: "read", outcome: .unauthenticated)])
    }

    @Test("the figure counts each reached outcome once and rounds down to a tenth")
    func figure() throws {
        let routes = try Self.config().routes
        let none = PolicyCoverage(routes: routes, reaches: [])
        #expect(none.total == 1 + 2 + 3 + 3 + 3 + 3)
        #expect(none.covered == 0)
        #expect(none.percentText == "0.0")

        let some = PolicyCoverage(
            routes: routes,
            reaches: [
                .init(route: "open", outcome: .allow), .init(route: "open", outcome: .allow),
                .init(route: "read", outcome: .insufficientScope), .init(route: "unknown", outcome: .allow),
                // Not an outcome of an optional route without scopes.
                .init(route: "maybe", outcome: .insufficientScope),
            ])
        #expect(some.covered == 2)
        #expect(some.percentText == "13.3", "2 of 15 is 13.33…%")
        let read = try #require(some.routes.first { $0.name == "read" })
        #expect(read.reached == [.insufficientScope])
        #expect(read.unreached == [.allow, .unauthenticated])
        #expect(read.location.fileAndLine == "c.yaml:11")
        #expect(some.meets(13.3))
        #expect(some.meets(13.33))
        #expect(!some.meets(13.4))

        let all = PolicyCoverage(
            routes: routes, reaches: routes.flatMap { route in PolicyCoverage.outcomes(of: route).map { .init(route: route.name, outcome: $0) } })
        #expect(all.covered == all.total)
        #expect(all.percentText == "100.0")
        #expect(all.meets(100))
    }

    @Test("no routes count as fully covered")
    func empty() {
        let coverage = PolicyCoverage(routes: [], reaches: [])
        #expect(coverage.total == 0)
        #expect(coverage.percentText == "100.0")
        #expect(coverage.meets(100))
    }
}
