import NIOCore
import PortcullisCore

/// Runs a decision to its end, for the public listener and the decision service alike: one
/// effect loop, so a password or a key behaves the same on both.
///
/// A decision may ask for work before it can be final: an Argon2 check of a password or API
/// key (run on the hashing pool, behind the login throttle), or one fetch of a `jwks_url` key
/// set that lacks the token's `kid` (within the on-demand rate limit). The runner does that
/// work and decides again with its result, at most twice. Most requests need none of it and
/// are answered at once, without a future.
struct DecisionRunner {
    let environment: GatewayEnvironment

    enum Outcome {
        /// Final now.
        case decided(Decision)
        /// Final once the work completes; the future completes on the event loop given.
        case pending(EventLoopFuture<Decision>)
    }

    /// Decides `facts` under `policy`.
    /// - Parameters:
    ///   - client: the client's address, as the login throttle counts it.
    ///   - eventLoop: where the caller is; a pending decision completes there.
    func run(_ facts: RequestFacts, policy: Policy, client: String, on eventLoop: any EventLoop) -> Outcome {
        self.advance(policy.decide(facts, now: WallClock.now()), facts, round: 1, policy: policy, client: client, on: eventLoop)
    }

    private func advance(
        _ decision: Decision, _ facts: RequestFacts, round: Int, policy: Policy, client: String, on eventLoop: any EventLoop
    ) -> Outcome {
        switch decision {
        case .verify(let check) where round <= 2:
            let throttle = self.environment.loginThrottle
            let metrics = self.environment.metrics
            if let wait = throttle.retryAfter(address: client, now: WallClock.now()) {
                // Held back without hashing: the decision renders the 429.
                metrics.loginFailure(reason: "throttled")
                var facts = facts
                facts.verdict = .throttled(check, retryAfter: wait)
                return self.advance(policy.decide(facts, now: WallClock.now()), facts, round: round + 1, policy: policy,
                                    client: client, on: eventLoop)
            }
            guard let verdict = self.environment.hashPool.run(check, on: eventLoop) else {
                var refusal = Refusal(status: 503, headers: [("Retry-After", "1")], detail: "Service Unavailable", reason: "hash_queue_full")
                refusal.closesConnection = true
                return .decided(.refuse(refusal))
            }
            return .pending(
                verdict.flatMap { verdict in
                    if verdict.matched == nil {
                        throttle.recordFailure(address: client, now: WallClock.now())
                        metrics.loginFailure(reason: check.kind == .apiKey ? "bad_api_key" : "bad_credentials")
                    }
                    var facts = facts
                    facts.verdict = verdict
                    return self.advance(policy.decide(facts, now: WallClock.now()), facts, round: round + 1, policy: policy,
                                        client: client, on: eventLoop).future(on: eventLoop)
                })
        case .verify:
            var refusal = Refusal(status: 500, detail: "Internal Server Error", reason: "credential_loop")
            refusal.closesConnection = true
            return .decided(.refuse(refusal))
        default:
            // The token names a kid its issuer's key set lacks: wait for one fetch of the set
            // (under way, or started now within the rate limit), then decide again.
            guard round <= 2, let set = decision.keySetToRefresh else { return .decided(decision) }
            let fetched = eventLoop.makePromise(of: Void.self)
            let waiting = self.environment.jwks.fetchForUnknownKid(set, now: WallClock.now()) { _ in fetched.succeed(()) }
            guard waiting else {
                fetched.succeed(())  // never completed otherwise (the completion does not run)
                return .decided(decision)
            }
            return .pending(
                fetched.futureResult.flatMap {
                    self.advance(policy.decide(facts, now: WallClock.now()), facts, round: round + 1, policy: policy,
                                 client: client, on: eventLoop).future(on: eventLoop)
                })
        }
    }
}

extension DecisionRunner.Outcome {
    func future(on eventLoop: any EventLoop) -> EventLoopFuture<Decision> {
        switch self {
        case .decided(let decision): return eventLoop.makeSucceededFuture(decision)
        case .pending(let future): return future
        }
    }
}
