import PortcullisCore
import Testing

@Suite("Decisions")
struct PolicyTests {
    static func policy() throws -> Policy {
        let yaml = """
            version: 1
            server: { realm: "api" }
            upstreams:
              u: { url: "http://127.0.0.1:9001/base" }
            routes:
              - { name: status, match: { path: /status, methods: [GET] }, auth: none, upstream: u }
              - { name: status-post, match: { path: /status, methods: [POST] }, auth: none, upstream: u, mode: enforce }
              - { name: me, match: { path: /users/me }, scopes: [me, items], upstream: u }
              - { name: admin, match: { path: "/admin/**", hosts: ["*.example.com"] }, auth: [bearer, basic, api_key], upstream: u, strip_prefix: /admin }
              - { name: open, match: { path: "/public/**" }, auth: none, upstream: u }
            """
        let result = ConfigLoader.load(text: yaml, file: "p.yaml")
        return Policy(config: try #require(result.config, "\(result.diagnostics)"))
    }

    @Test("an auth: none route forwards the normalized path under the upstream's base path")
    func forwards() throws {
        guard case .forward(let plan) = try Self.policy().decide(RequestFacts(method: "GET", rawTarget: "/public/a/../b?q=%2F", host: "x"), now: 1_700_000_000) else {
            Issue.record("refused")
            return
        }
        #expect(plan.routeName == "open")
        #expect(plan.upstreamURL == "http://127.0.0.1:9001/base/public/b?q=%2F")
    }

    @Test("a route that lists GET admits HEAD")
    func headFollowsGet() throws {
        guard case .forward(let plan) = try Self.policy().decide(RequestFacts(method: "HEAD", rawTarget: "/status", host: nil), now: 1_700_000_000) else {
            Issue.record("refused")
            return
        }
        #expect(plan.routeName == "status")
    }

    @Test("protected routes are refused with the exact challenge")
    func challenges() throws {
        let policy = try Self.policy()
        guard case .refuse(let refusal) = policy.decide(RequestFacts(method: "GET", rawTarget: "/users/me", host: nil), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(refusal.status == 401)
        #expect(refusal.challenges == ["Bearer realm=\"api\", scope=\"me items\""])
        #expect(String(decoding: refusal.body, as: UTF8.self) == "{\"detail\":\"Not authenticated\"}")

        guard case .refuse(let several) = policy.decide(RequestFacts(method: "GET", rawTarget: "/admin/x", host: "a.example.com:8080"), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(several.challenges == ["Bearer realm=\"api\"", "Basic realm=\"api\", charset=\"UTF-8\"", "APIKey"])
    }

    @Test("no route is 404; a route for other methods is 405 with Allow")
    func notFoundAndNotAllowed() throws {
        let policy = try Self.policy()
        guard case .refuse(let missing) = policy.decide(RequestFacts(method: "GET", rawTarget: "/nowhere", host: nil), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(missing.status == 404)
        guard case .refuse(let wrongHost) = policy.decide(RequestFacts(method: "GET", rawTarget: "/admin/x", host: "evil.com"), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(wrongHost.status == 404)
        guard case .refuse(let notAllowed) = policy.decide(RequestFacts(method: "DELETE", rawTarget: "/status", host: nil), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(notAllowed.status == 405)
        #expect(notAllowed.headers.first { $0.name == "Allow" }?.value == "GET, HEAD, POST")
    }

    @Test("a traversal cannot reach a public route's upstream for a protected path")
    func traversal() throws {
        let policy = try Self.policy()
        guard case .refuse(let refusal) = policy.decide(RequestFacts(method: "GET", rawTarget: "/public/../users/me", host: nil), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(refusal.status == 401)
        guard case .refuse(let bad) = policy.decide(RequestFacts(method: "GET", rawTarget: "/public/%2F../users/me", host: nil), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(bad.status == 400)
    }
}

@Suite("Scope claims")
struct ScopeClaimTests {
    @Test("a space-delimited claim splits into its words, empty ones dropped")
    func spaceDelimited() {
        #expect(BearerVerifier.spaceDelimited("") == [])
        #expect(BearerVerifier.spaceDelimited("   ") == [])
        #expect(BearerVerifier.spaceDelimited("me") == ["me"])
        #expect(BearerVerifier.spaceDelimited("me items") == ["me", "items"])
        #expect(BearerVerifier.spaceDelimited("  me   items ") == ["me", "items"])
        #expect(BearerVerifier.spaceDelimited("é ü") == ["é", "ü"])
        for text in ["a b", " a", "a  b  c ", "x\ty z"] {
            #expect(BearerVerifier.spaceDelimited(text) == text.split(separator: " ").map(String.init))
        }
    }
}

@Suite("Host field values (RFC 9112 §3.2)")
struct HostFieldTests {
    @Test("uri-host with an optional numeric port is valid")
    func valid() {
        for value in [
            "", "example.com", "example.com:8443", "EXAMPLE.com", "a.example.com.", "x.example.com:", "127.0.0.1:80",
            "[::1]", "[::1]:8080", "[2001:db8::7]", "[::ffff:192.0.2.1]:80", "[v1.fe80::a+en1]", "my_host", "host~1:1",
            "a.example.com.:8443", "a", "a.",
        ] {
            #expect(RequestTarget.isValidHost(value), "\(value)")
        }
    }

    @Test("anything else is not")
    func invalid() {
        for value in [
            "a.example.com:abc", "a.example.com/x", "a.example.com:80:80", "a b", "a@b", "[::1", "[]", "[::1]x",
            "[::1]:8a", "a,b", "%41.example.com", "[zz]", "[v1.]", "[1.2.3.4]", "%4", "%zz.example.com", "example.com:-1", "exa\u{E9}mple.com", "a\\b", "a?b", "a#b",
        ] {
            #expect(!RequestTarget.isValidHost(value), "\(value)")
        }
    }

    /// One trailing dot is dropped for matching, so a second one would make the name miss the
    /// routes that name it and fall through to a later one.
    @Test("a name with an empty label is not", arguments: [
        "a..example.com", "admin.example.com..", "admin.example.com..:443", ".a", ".", "..", ".example.com", "a...b",
    ])
    func emptyLabel(_ value: String) {
        #expect(!RequestTarget.isValidHost(value))
        #expect(RequestTarget.normalize("http://\(value)/x", mergeSlashes: true) == .failure(.badAuthority))
    }

    @Test("IP literals are not names: their dots and colons are not labels")
    func ipLiterals() {
        for value in ["127.0.0.1", "127.0.0.1:8080", "[::1]", "[::ffff:127.0.0.1]", "[::1]:80"] {
            #expect(RequestTarget.isValidHost(value), "\(value)")
            #expect((try? RequestTarget.normalize("http://\(value)/x", mergeSlashes: true).get().authority) == value, "\(value)")
        }
    }

    static func hostPolicy() throws -> Policy {
        let yaml = """
            version: 1
            server: { realm: "api" }
            upstreams:
              u: { url: "http://127.0.0.1:9001" }
            routes:
              - { name: admin, match: { path: "/x/**", hosts: [admin.example.com] }, auth: bearer, upstream: u }
              - { name: open, match: { path: "/x/**" }, auth: none, upstream: u }
            """
        let result = ConfigLoader.load(text: yaml, file: "h.yaml")
        return Policy(config: try #require(result.config, "\(result.diagnostics)"))
    }

    @Test("a Host with two trailing dots is refused, not routed past the route that names it")
    func twoTrailingDots() throws {
        let policy = try Self.hostPolicy()
        for host in ["admin.example.com..", "admin..example.com", ".admin.example.com"] {
            guard case .refuse(let refusal) = policy.decide(RequestFacts(method: "GET", rawTarget: "/x/a", host: host), now: 1_700_000_000) else {
                Issue.record("\(host) was forwarded")
                continue
            }
            #expect(refusal.status == 400, "\(host)")
            #expect(refusal.reason == .badHost, "\(host)")
        }
        guard case .refuse(let absolute) = policy.decide(RequestFacts(method: "GET", rawTarget: "http://admin.example.com../x/a", host: "gw"), now: 1_700_000_000) else {
            Issue.record("the absolute-form target was forwarded")
            return
        }
        #expect(absolute.status == 400)
        for host in ["admin.example.com.", "ADMIN.example.com.:8080"] {
            guard case .refuse(let challenge) = policy.decide(RequestFacts(method: "GET", rawTarget: "/x/a", host: host), now: 1_700_000_000) else {
                Issue.record("\(host) was forwarded")
                continue
            }
            #expect(challenge.status == 401, "\(host): one trailing dot still matches the bearer route")
        }
    }
}
