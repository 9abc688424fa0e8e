import PortcullisCore
import Testing

@Suite("The decision service")
struct DecisionServiceTests {
    static func policy(requestFrom: String = "original", extra: String = "") throws -> Policy {
        let yaml = """
            version: 1
            server:
              realm: "api"
              claim_headers: { X-Auth-Email: email }
            decisions:
              listen: "127.0.0.1:9902"
              request_from: \(requestFrom)
            \(extra)
            upstreams:
              u: { url: "http://127.0.0.1:9001" }
            routes:
              - { name: open, match: { path: "/public/**" }, auth: none, upstream: u }
              - { name: maybe, match: { path: "/maybe/**" }, auth: optional }
              - { name: me, match: { path: /users/me, methods: [GET] }, scopes: [me] }
            """
        let result = ConfigLoader.load(text: yaml, file: "d.yaml")
        return Policy(config: try #require(result.config, "\(result.diagnostics)"))
    }

    static func facts(_ policy: Policy, method: String = "GET", target: String = "/auth", _ fields: [(String, String)]) -> RequestFacts {
        RequestFacts.decisionRequest(
            method: method, target: target, fields: fields.map { (name: $0.0, value: $0.1) }, peer: "127.0.0.1",
            decisions: policy.config.decisions!, policy: policy)
    }

    @Test("routes may leave out upstream when decisions is set, and not otherwise")
    func upstreamOptional() throws {
        let policy = try Self.policy()
        #expect(policy.config.routes[1].upstream == nil)
        let without = ConfigLoader.load(
            text: "version: 1\nupstreams: {}\nroutes:\n  - { name: a, match: { path: /a }, auth: none }\n", file: "n.yaml")
        #expect(without.config == nil)
        #expect(without.diagnostics.description.contains("n.yaml:4:5: error: route 'a' is missing the required key 'upstream'"))
    }

    static let broken: [(String, String, String)] = [
        ("no request_from", "decisions: { listen: \"127.0.0.1:1\" }\n", "2:12: error: decisions is missing the required key 'request_from'"),
        ("bad request_from", "decisions: { request_from: orignal }\n", "2:28: error: decisions.request_from must be original"),
        ("unknown key", "decisions: { request_from: target, path_prefx: /a }\n", "2:36: error: unknown key 'path_prefx' in decisions; did you mean 'path_prefix'?"),
        ("prefix with header modes", "decisions: { request_from: original, path_prefix: /auth }\n", "2:51: error: decisions.path_prefix applies to request_from: target only"),
        ("bad proxy", "decisions: { request_from: target, trusted_proxies: [\"10.0.0.0/33\"] }\n", "2:54: error: '10.0.0.0/33' is not an IP address or CIDR block"),
        ("empty proxies", "decisions: { request_from: target, trusted_proxies: [] }\n", "2:53: error: decisions.trusted_proxies is empty"),
        ("port clash", "decisions: { request_from: target, listen: \"127.0.0.1:8080\" }\n", "2:44: error: decisions.listen 127.0.0.1:8080 would take the port of server.listen"),
        ("nothing listens", "server: { listen: \"\" }\n", "2:19: error: server.listen is \"\", and no decisions.listen is set"),
    ]

    @Test("mistakes in decisions are reported with line and column", arguments: Self.broken)
    func reportsErrors(_ name: String, _ section: String, _ expected: String) {
        let yaml = "version: 1\n\(section)upstreams: {}\nroutes: []\n"
        let result = ConfigLoader.load(text: yaml, file: "bad.yaml")
        #expect(result.config == nil, "\(name) was accepted")
        #expect(result.diagnostics.description.contains("bad.yaml:" + expected), "\(name): \(result.diagnostics.description)")
    }

    @Test("original reads X-Original-*, ignores the other modes' headers and the check request's own Host")
    func originalMode() throws {
        let policy = try Self.policy()
        let facts = Self.facts(policy, [
            ("Host", "portcullis:9902"), ("X-Original-Method", "POST"), ("X-Original-URI", "/users/me?x=1"),
            ("X-Original-Host", "api.example"), ("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Method", "GET"),
            ("Authorization", "Bearer abc"),
        ])
        #expect(facts.method == "POST")
        #expect(facts.rawTarget == "/users/me?x=1")
        #expect(facts.host == "api.example")
        #expect(facts.authorization == ["Bearer abc"])
        #expect(facts.listener == .decisions)
        #expect(facts.refusedBeforeDecision == nil)
        #expect(!facts.fields.contains { $0.value == "portcullis:9902" })
    }

    @Test("a missing or repeated description is 400, sent as 403 with X-Portcullis-Status")
    func missing() throws {
        let policy = try Self.policy()
        for fields in [
            [("X-Original-Method", "GET"), ("X-Original-Host", "a")],
            [("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Host", "a")],
            [("X-Original-Method", "GET"), ("X-Original-URI", "/public/x"), ("X-Original-URI", "/users/me"), ("X-Original-Host", "a")],
        ] {
            let facts = Self.facts(policy, fields)
            let answer = policy.decisionServiceAnswer(policy.decide(facts, now: 1_700_000_000), requestID: "r")
            #expect(answer.status == 403)
            #expect(answer.decidedStatus == 400)
            #expect(answer.headers.contains { $0 == ("X-Portcullis-Status", "400") })
        }
    }

    @Test("target mode strips path_prefix on a segment boundary")
    func targetMode() throws {
        let policy = try Self.policy(requestFrom: "target\n  path_prefix: /check")
        let facts = Self.facts(policy, method: "GET", target: "/check/public/a?b=1", [("Host", "api.example"), ("X-Original-URI", "/users/me")])
        #expect(facts.rawTarget == "/public/a?b=1")
        #expect(facts.host == "api.example")
        let root = Self.facts(policy, target: "/check", [("Host", "a")])
        #expect(root.rawTarget == "/")
        let elsewhere = Self.facts(policy, target: "/checkout/x", [("Host", "a")])
        #expect(elsewhere.refusedBeforeDecision != nil)
    }

    @Test("an allowed anonymous request gets every identity header, empty, and the route")
    func anonymous() throws {
        let policy = try Self.policy()
        let facts = Self.facts(policy, [
            ("X-Original-Method", "GET"), ("X-Original-URI", "/maybe/x"), ("X-Original-Host", "a"), ("X-Auth-Subject", "root"),
        ])
        let answer = policy.decisionServiceAnswer(policy.decide(facts, now: 1_700_000_000), requestID: "req-1")
        #expect(answer.status == 200)
        #expect(answer.body.isEmpty)
        let expected: [(String, String)] = [
            ("X-Auth-Subject", ""), ("X-Auth-Scopes", ""), ("X-Auth-Method", ""), ("X-Auth-Roles", ""), ("X-Auth-Email", ""),
            ("X-Portcullis-Route", "maybe"), ("X-Request-Id", "req-1"),
        ]
        #expect(answer.headers.map { "\($0.name): \($0.value)" } == expected.map { "\($0.0): \($0.1)" })
    }

    @Test("refusals keep 401 and 403 with their challenge; 404 and 405 become 403")
    func refusals() throws {
        let policy = try Self.policy()
        func answer(_ method: String, _ uri: String) -> DecisionServiceAnswer {
            let facts = Self.facts(policy, [("X-Original-Method", method), ("X-Original-URI", uri), ("X-Original-Host", "a")])
            return policy.decisionServiceAnswer(policy.decide(facts, now: 1_700_000_000), requestID: "r")
        }
        let missing = answer("GET", "/users/me")
        #expect(missing.status == 401)
        #expect(missing.headers.contains { $0 == ("WWW-Authenticate", "Bearer realm=\"api\", scope=\"me\"") })
        #expect(!missing.headers.contains { $0.name == "X-Portcullis-Status" })
        let notFound = answer("GET", "/nowhere")
        #expect(notFound.status == 403 && notFound.decidedStatus == 404)
        #expect(String(decoding: notFound.body, as: UTF8.self) == "{\"detail\":\"Not Found\"}")
        let notAllowed = answer("DELETE", "/users/me")
        #expect(notAllowed.status == 403)
        #expect(notAllowed.headers.contains { $0 == ("X-Portcullis-Status", "405") })
        let badPath = answer("GET", "/public/%2F")
        #expect(badPath.headers.contains { $0 == ("X-Portcullis-Status", "400") })
    }

    @Test("a route without upstream is 404 on the public listener after matching")
    func publicListener() throws {
        let policy = try Self.policy()
        guard case .refuse(let refusal) = policy.decide(RequestFacts(method: "GET", rawTarget: "/maybe/x", host: "a"), now: 1_700_000_000) else {
            Issue.record("forwarded")
            return
        }
        #expect(refusal.status == 404)
        #expect(refusal.routeName == "maybe")
        #expect(String(decoding: refusal.body, as: UTF8.self) == "{\"detail\":\"Not Found\"}")
    }
}
