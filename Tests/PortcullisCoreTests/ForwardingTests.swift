import PortcullisCore
import Testing

@Suite("The upstream request head the decision computes")
struct ForwardingTests {
    static func policy(trusted: String = "[]") throws -> Policy {
        let yaml = """
            version: 1
            server:
              realm: "api"
              trusted_proxies: \(trusted)
            upstreams:
              u: { url: "http://127.0.0.1:9001" }
              own: { url: "http://backend.internal:80/base", preserve_host: false }
            routes:
              - { name: open, match: { path: "/public/**" }, auth: none, upstream: u }
              - { name: own, match: { path: "/own/**" }, auth: none, upstream: own, strip_prefix: /own }
              - { name: shadow, match: { path: "/shadow/**" }, upstream: u, mode: dry-run }
            """
        let result = ConfigLoader.load(text: yaml, file: "f.yaml")
        return Policy(config: try #require(result.config, "\(result.diagnostics)"))
    }

    static func plan(_ policy: Policy, _ target: String, _ fields: [(String, String)], peer: String = "192.0.2.7") -> ForwardPlan? {
        let facts = RequestFacts.dryRun(method: "GET", target: target, headers: fields, peer: peer, policy: policy)
        guard case .forward(let plan) = policy.decide(facts, now: 1_700_000_000) else { return nil }
        return plan
    }

    @Test("the client's fields pass in order, then the gateway's own, Host first")
    func order() throws {
        let plan = try #require(Self.plan(
            try Self.policy(), "/public/a",
            [("Host", "api.example"), ("Accept", "a"), ("X-Multi", "1"), ("Accept", "b"), ("X-Request-Id", "r-1")]))
        #expect(plan.method == "GET")
        #expect(plan.headers.map(\.name) == [
            "Host", "Accept", "X-Multi", "Accept", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id",
        ])
        #expect(plan.headers.first { $0.name == "X-Forwarded-For" }?.value == "192.0.2.7")
        #expect(plan.headers.first { $0.name == "X-Request-Id" }?.value == "r-1")
    }

    @Test("identity, hop-by-hop, proxy and forwarding fields from an untrusted peer never pass")
    func untrusted() throws {
        let fields = [
            ("Host", "h"), ("X-Auth-Subject", "root"), ("X_Auth_Subject", "root"), ("Connection", "X-Hop"), ("X-Hop", "1"),
            ("Keep-Alive", "5"), ("Proxy-Authorization", "Basic x"), ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Prefix", "/p"), ("True-Client-IP", "10.0.0.1"), ("Front-End-Https", "on"), ("Forwarded", "for=x"),
            ("X-Kept", "yes"),
        ]
        let plan = try #require(Self.plan(try Self.policy(), "/public/a", fields))
        let names = Set(plan.headers.map { $0.name.lowercased() })
        #expect(names == ["host", "x-kept", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"])
        #expect(plan.headers.first { $0.name == "X-Forwarded-For" }?.value == "192.0.2.7")
    }

    @Test("a trusted proxy's forwarding fields pass, and its X-Forwarded-For is appended to")
    func trusted() throws {
        let policy = try Self.policy(trusted: "[\"192.0.2.0/24\"]")
        let plan = try #require(Self.plan(
            policy, "/public/a",
            [("Host", "h"), ("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Prefix", "/p")]))
        #expect(plan.headers.first { $0.name == "X-Forwarded-For" }?.value == "10.0.0.1, 192.0.2.7")
        #expect(plan.headers.first { $0.name == "X-Forwarded-Proto" }?.value == "https")
        #expect(plan.headers.contains { $0.name == "X-Forwarded-Prefix" && $0.value == "/p" })
    }

    @Test("without preserve_host the upstream gets its own authority, without a default port")
    func ownHost() throws {
        let plan = try #require(Self.plan(try Self.policy(), "/own/x?q=1", [("Host", "api.example")]))
        #expect(plan.upstreamURL == "http://backend.internal:80/base/x?q=1")
        #expect(plan.headers.first?.name == "Host")
        #expect(plan.headers.first?.value == "backend.internal")
        #expect(plan.headers.first { $0.name == "X-Forwarded-Host" }?.value == "api.example")
    }

    @Test("shadow mode is a forward carrying the refusal it would have sent")
    func shadow() throws {
        let plan = try #require(Self.plan(try Self.policy(), "/shadow/x", [("Host", "h")]))
        #expect(plan.shadowed?.status == 401)
        #expect(plan.identity == nil)
    }

    @Test("deciding twice on the same facts gives the same head")
    func deterministic() throws {
        let policy = try Self.policy()
        let facts = RequestFacts.dryRun(
            method: "GET", target: "/public/a", headers: [("Host", "h"), ("X-Request-Id", "same")], policy: policy)
        guard case .forward(let first) = policy.decide(facts, now: 1), case .forward(let second) = policy.decide(facts, now: 1)
        else {
            Issue.record("refused")
            return
        }
        #expect(first.headers.map { "\($0.name): \($0.value)" } == second.headers.map { "\($0.name): \($0.value)" })
    }
}

@Suite("The client address behind trusted proxies")
struct ClientAddressTests {
    let trusted = [CIDR("10.0.0.0/8")!, CIDR("127.0.0.1")!]

    @Test("an untrusted peer is the client, whatever it says")
    func untrustedPeer() {
        #expect(ClientAddress.resolve(peer: "192.0.2.1", forwardedFor: ["203.0.113.9"], trustedProxies: self.trusted) == "192.0.2.1")
    }

    @Test("the rightmost entry that is not a trusted proxy is the client")
    func rightmostUntrusted() {
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 203.0.113.9"], trustedProxies: self.trusted) == "203.0.113.9")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["203.0.113.9", "10.1.1.1, 10.2.2.2"], trustedProxies: self.trusted) == "203.0.113.9")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["[2001:db8::1]:443"], trustedProxies: self.trusted) == "2001:db8::1")
    }

    @Test("when every hop is trusted, the leftmost is the client; garbage stops the walk")
    func edges() {
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["10.0.0.5, 10.0.0.6"], trustedProxies: self.trusted) == "10.0.0.5")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["not-an-ip, 10.0.0.6"], trustedProxies: self.trusted) == "10.0.0.6")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: [], trustedProxies: self.trusted) == "127.0.0.1")
    }

    @Test("addresses read per request are read as inet_pton reads them")
    func addressesAsInetPton() {
        var texts = [
            "0.0.0.0", "255.255.255.255", "10.0.0.1", "127.0.0.1", "1.2.3.4", "256.1.1.1", "1.2.3.256", "01.2.3.4",
            "1.2.3.04", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4",
            "1000.1.1.1", "0x1.2.3.4", "１.2.3.4", "::1", "::ffff:10.0.0.1", "2001:db8::1", "", "1.2.3.4:80",
            "999.999.999.999", "00.0.0.0", "0.0.0.00", "12.34.56.78",
        ]
        // And every dotted string of three to five parts drawn from edge cases of a part.
        let parts = ["0", "00", "01", "7", "42", "099", "199", "255", "256", "300", "1000", "", "x"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % bound
        }
        for _ in 0..<20000 {
            texts.append((0..<(3 + next(3))).map { _ in parts[next(parts.count)] }.joined(separator: "."))
        }
        var accepted = 0
        for text in texts {
            let read = IPAddressBytes.withParsed(text) { Array($0) }
            #expect(read == IPAddressBytes.parse(text), "\(text)")
            if read != nil { accepted += 1 }
        }
        #expect(accepted > 80)  // real addresses among them, not only refusals
    }
}

@Suite("Challenges")
struct ChallengeTests {
    @Test("Bearer errors repeat error and error_description in the body")
    func bearerBody() {
        let refusal = Challenge.refusal(.invalidToken, realm: "R", description: "The access token expired", reason: .expired)
        #expect(refusal.status == 401)
        #expect(refusal.challenges == ["Bearer realm=\"R\", error=\"invalid_token\", error_description=\"The access token expired\""])
        #expect(String(decoding: refusal.body, as: UTF8.self)
            == "{\"detail\":\"Could not validate credentials\",\"error\":\"invalid_token\",\"error_description\":\"The access token expired\"}")
        let scope = Challenge.refusal(.insufficientScope, realm: "R", description: "d", scope: "a b", reason: .insufficientScope)
        #expect(scope.status == 403)
        #expect(scope.challenges == ["Bearer realm=\"R\", error=\"insufficient_scope\", scope=\"a b\", error_description=\"d\""])
    }
}
