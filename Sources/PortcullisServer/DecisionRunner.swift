import NIOCore
import PortcullisCore

/// Drives a request's ``DecisionLoop`` for the public listener and the decision service
/// alike: the password and API-key checks run on the hashing pool behind the login throttle,
/// a key set lacking a token's `kid` is fetched once within its rate limit, and what the
/// decision asks to remember goes to the caches. Most requests need none of it and are
/// answered at once, without a future.
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
    func run(_ facts: consuming RequestFacts, policy: Policy, client: String, on eventLoop: any EventLoop) -> Outcome {
        var loop = DecisionLoop(policy: policy, facts: facts)
        let step = loop.start(now: WallClock.now())
        return self.advance(step, loop, client: client, on: eventLoop)
    }

    private func advance(_ step: DecisionLoop.Step, _ loop: DecisionLoop, client: String, on eventLoop: any EventLoop) -> Outcome {
        // Most requests are decided at once: the loop is copied only by the steps that resume it.
        if case .decided(let decision) = step { return .decided(decision) }
        var loop = loop
        switch step {
        case .decided(let decision):
            return .decided(decision)
        case .verify(let check):
            let throttle = self.environment.loginThrottle
            let metrics = self.environment.metrics
            if let wait = throttle.retryAfter(address: client, now: WallClock.now()) {
                // Held back without hashing: the decision renders the 429.
                metrics.loginFailure(reason: "throttled")
                let next = loop.resume(verdict: .throttled(check, retryAfter: wait), now: WallClock.now())
                return self.advance(next, loop, client: client, on: eventLoop)
            }
            guard let verdict = self.environment.hashPool.run(check, on: eventLoop) else {
                var refusal = Refusal(status: 503, headers: [("Retry-After", "1")], detail: "Service Unavailable", reason: .hashQueueFull)
                refusal.closesConnection = true
                return .decided(.refuse(refusal))
            }
            return .pending(
                verdict.flatMap { [loop] verdict in
                    var loop = loop
                    if verdict.matched == nil {
                        throttle.recordFailure(address: client, now: WallClock.now())
                        metrics.loginFailure(reason: check.kind == .apiKey ? "bad_api_key" : "bad_credentials")
                    }
                    let next = loop.resume(verdict: verdict, now: WallClock.now())
                    return self.advance(next, loop, client: client, on: eventLoop).future(on: eventLoop)
                })
        case .fetchKeySet(let set):
            // Wait for one fetch of the set (under way, or started now within the rate limit).
            let fetched = eventLoop.makePromise(of: Void.self)
            let waiting = self.environment.jwks.fetchForUnknownKid(set, now: WallClock.now()) { _ in fetched.succeed(()) }
            guard waiting else {
                fetched.succeed(())  // never completed otherwise (the completion does not run)
                return self.advance(loop.keySetUnavailable(), loop, client: client, on: eventLoop)
            }
            return .pending(
                fetched.futureResult.flatMap { [loop] in
                    var loop = loop
                    let next = loop.keySetFetched(now: WallClock.now())
                    return self.advance(next, loop, client: client, on: eventLoop).future(on: eventLoop)
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
