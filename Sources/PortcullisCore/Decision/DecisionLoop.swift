/// What a decision asks the caller to remember: a token it verified, a password or API key
/// whose check came back. ``Policy/decide(_:now:recorder:effects:)`` only reports them; the
/// caller that serves requests writes them to the caches (``Policy/remember(_:now:)``), and a
/// dry run (`check`, `test`) does not.
package struct DecisionEffects: Sendable {
    package var verifiedToken: (key: VerifiedTokenCache.Key, token: VerifiedToken)?
    package var credential: (key: CredentialCache.Key, subject: CredentialCache.Subject)?

    package init() {}
}

extension Policy {
    /// Writes what a decision asked to remember.
    package func remember(_ effects: DecisionEffects, now: Double) {
        if let verified = effects.verifiedToken { self.verifier.cache?.insert(verified.key, verified.token) }
        if let credential = effects.credential { self.credentials.insert(credential.key, credential.subject, now: now) }
    }
}

/// The one effect loop of a decision, the same for every caller: `serve` and the decision
/// service drive it asynchronously (``DecisionRunner`` in the server), `check` and `test`
/// synchronously (``Policy/decideCompletely(_:now:recorder:)``).
///
/// A decision may ask for work before it can be final: an Argon2 check of a password or API
/// key, or one fetch of a `jwks_url` key set that lacks the token's `kid`. The loop says which
/// (a ``Step``), the caller does it and resumes the loop with the result, and the loop decides
/// again, at most twice.
package struct DecisionLoop: Sendable {
    package enum Step {
        /// Final.
        case decided(Decision)
        /// Check this password or API key, then ``resume(verdict:now:)``.
        case verify(CredentialCheck)
        /// Fetch this key set once, then ``keySetFetched(now:)``; when no fetch can be made
        /// now, ``keySetUnavailable()``.
        case fetchKeySet(RemoteKeySet)
    }

    package let policy: Policy
    package private(set) var facts: RequestFacts
    private let remembers: Bool
    private var round = 0
    /// The decision a key set fetch may change: it stands when none can be made.
    private var standing: Decision?

    /// - Parameter remembers: write what each decision asks to remember to the policy's caches.
    package init(policy: Policy, facts: RequestFacts, remembers: Bool = true) {
        self.policy = policy
        self.facts = facts
        self.remembers = remembers
    }

    package mutating func start(now: Double) -> Step {
        self.decide(now: now)
    }

    /// The credential check asked for came back (or the login throttle held it back:
    /// ``CredentialVerdict/throttled(_:retryAfter:)``).
    package mutating func resume(verdict: CredentialVerdict, now: Double) -> Step {
        self.facts.verdict = verdict
        return self.decide(now: now)
    }

    package mutating func keySetFetched(now: Double) -> Step {
        self.decide(now: now)
    }

    package mutating func keySetUnavailable() -> Step {
        .decided(self.standing ?? .refuse(Self.loopRefusal))
    }

    private mutating func decide(now: Double) -> Step {
        self.round += 1
        var effects = DecisionEffects()
        var recorder = NoTrace()
        let decision = self.policy.decide(self.facts, now: now, recorder: &recorder, effects: &effects)
        if self.remembers { self.policy.remember(effects, now: now) }
        switch decision {
        case .verify(let check) where self.round <= 2:
            return .verify(check)
        case .verify:
            return .decided(.refuse(Self.loopRefusal))
        default:
            // The token names a kid its issuer's key set lacks: one fetch of the set, then again.
            guard self.round <= 2, let set = decision.keySetToRefresh else { return .decided(decision) }
            self.standing = decision
            return .fetchKeySet(set)
        }
    }

    /// A decision that keeps asking for checks: an internal error, and the connection closes.
    static var loopRefusal: Refusal {
        var refusal = Refusal(status: 500, detail: "Internal Server Error", reason: .credentialLoop)
        refusal.closesConnection = true
        return refusal
    }
}
