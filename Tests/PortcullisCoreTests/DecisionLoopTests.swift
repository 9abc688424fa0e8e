import PortcullisCore
import PortcullisCrypto
import Testing

/// Deciding changes nothing: what a decision would cache is reported, and only the caller that
/// serves writes it; the same facts always get the same answer.
@Suite("Decision effects and the effect loop")
struct DecisionLoopTests {
    static let secret = "0123456789abcdef0123456789abcdef"

    static func policy() throws -> Policy {
        let yaml = """
            version: 1
            jwt:
              cache_size: 100
              issuers:
                - issuer: "https://issuer.test"
                  audiences: ["api"]
                  algorithms: [HS256]
                  keys:
                    - { kid: k1, secret_env: S }
            upstreams:
              u: { url: "http://127.0.0.1:9001" }
            routes:
              - { name: items, match: { path: /items }, scopes: [read], upstream: u }
            """
        let result = ConfigLoader.load(text: yaml, file: "l.yaml", environment: FixedEnvironment(variables: ["S": Self.secret]))
        return Policy(config: try #require(result.config, "\(result.diagnostics)"))
    }

    static func token(scope: String) throws -> String {
        try CompactJWS.sign(
            header: #"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
            payload: #"{"iss":"https://issuer.test","aud":"api","sub":"ada","exp":2000000000,"scope":"\#(scope)"}"#,
            algorithm: .HS256, key: .secret(HMACKey(Array(Self.secret.utf8))))
    }

    static func facts(_ token: String) -> RequestFacts {
        RequestFacts(method: "GET", rawTarget: "/items", host: "gw", authorization: ["Bearer \(token)"])
    }

    @Test("a verified token is reported, not cached, until the caller remembers it")
    func effectsAreExplicit() throws {
        let policy = try Self.policy()
        let facts = Self.facts(try Self.token(scope: "read"))
        var recorder = NoTrace()
        var first = DecisionEffects()
        guard case .forward = policy.decide(facts, now: 1_700_000_000, recorder: &recorder, effects: &first) else {
            Issue.record("not forwarded"); return
        }
        #expect(first.verifiedToken != nil)
        // Nothing was cached: deciding again verifies again, and answers the same.
        var second = DecisionEffects()
        guard case .forward(let again) = policy.decide(facts, now: 1_700_000_000, recorder: &recorder, effects: &second) else {
            Issue.record("a second decision differs"); return
        }
        #expect(second.verifiedToken != nil && again.identity?.subject == "ada")
        policy.remember(second, now: 1_700_000_000)
        var third = DecisionEffects()
        guard case .forward = policy.decide(facts, now: 1_700_000_000, recorder: &recorder, effects: &third) else {
            Issue.record("a cached token is refused"); return
        }
        #expect(third.verifiedToken == nil)  // found in the cache this time
    }

    @Test("a dry run warms no cache; the serving loop does")
    func dryRunsRememberNothing() throws {
        let policy = try Self.policy()
        let facts = Self.facts(try Self.token(scope: "read write"))
        var recorder = NoTrace()
        _ = policy.decideCompletely(facts, now: 1_700_000_000, recorder: &recorder)
        var effects = DecisionEffects()
        _ = policy.decide(facts, now: 1_700_000_000, recorder: &recorder, effects: &effects)
        #expect(effects.verifiedToken != nil)

        var loop = DecisionLoop(policy: policy, facts: facts)
        guard case .decided(.forward) = loop.start(now: 1_700_000_000) else { Issue.record("not forwarded"); return }
        var after = DecisionEffects()
        _ = policy.decide(facts, now: 1_700_000_000, recorder: &recorder, effects: &after)
        #expect(after.verifiedToken == nil)
    }

    @Test("a token lacking the scope is refused the same way every time, cached or not")
    func sameAnswer() throws {
        let policy = try Self.policy()
        let facts = Self.facts(try Self.token(scope: "other"))
        var loop = DecisionLoop(policy: policy, facts: facts)
        guard case .decided(.refuse(let first)) = loop.start(now: 1_700_000_000) else { Issue.record("not refused"); return }
        var again = DecisionLoop(policy: policy, facts: facts)
        guard case .decided(.refuse(let second)) = again.start(now: 1_700_000_000) else { Issue.record("not refused"); return }
        #expect(first.status == 403 && second.status == 403 && first.reason == second.reason)
        #expect(first.headers.map(\.value) == second.headers.map(\.value) && first.body == second.body)
    }

    @Test("a cached token skips the b64token check it passed once; any other token still gets it, first")
    func malformedAfterCaching() throws {
        let policy = try Self.policy()
        let token = try Self.token(scope: "read")
        var loop = DecisionLoop(policy: policy, facts: Self.facts(token))
        guard case .decided(.forward) = loop.start(now: 1_700_000_000) else { Issue.record("not forwarded"); return }
        // Cached now: the same token passes again without being verified.
        var effects = DecisionEffects()
        var recorder = NoTrace()
        guard case .forward = policy.decide(Self.facts(token), now: 1_700_000_000, recorder: &recorder, effects: &effects) else {
            Issue.record("the cached token is refused"); return
        }
        #expect(effects.verifiedToken == nil)
        // A token with a character outside b64token is 400 invalid_request, as without a cache,
        // whether it is otherwise a token the cache knows or too large to verify.
        for bad in [token + "!", "x,\(token)", String(repeating: "a", count: BearerVerifier.maximumTokenBytes) + "\""] {
            guard case .refuse(let refusal) = policy.decide(Self.facts(bad), now: 1_700_000_000) else {
                Issue.record("a malformed token was not refused"); continue
            }
            #expect(refusal.status == 400 && refusal.reason == .invalidRequest)
            #expect(refusal.headers.contains { $0.value.contains("error=\"invalid_request\"") })
            #expect(refusal.headers.contains { $0.value.contains(PresentedCredentials.invalidTokenCharacters) })
        }
        // Too large but well formed: the verifier's refusal.
        let large = String(repeating: "a", count: BearerVerifier.maximumTokenBytes + 1)
        guard case .refuse(let refusal) = policy.decide(Self.facts(large), now: 1_700_000_000) else {
            Issue.record("a token too large was not refused"); return
        }
        #expect(refusal.status == 401 && refusal.reason == .tokenTooLarge)
    }
}
