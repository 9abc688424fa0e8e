/// One step of a decision, for `check`, `test` and logs.
package enum TraceStep: Sendable {
    case normalized(path: String, query: String?, host: String?)
    case targetRefused(String)
    case matched(route: String, location: SourceLocation)
    case noRoute(allowed: [String])
    case credentials(String)
    case tokenVerified(VerifiedToken)
    case tokenRejected(TokenRejection)
    case schemeNotAvailable(AuthScheme)
    case scopes(required: [String], requiredAny: [String], granted: [String], missing: [String])
    case roles(required: [String], requiredAny: [String], granted: [String], missing: [String])
    /// A `claims` condition of the route: whether it held, and the value the token had.
    case claimCondition(ClaimCondition, held: Bool, actual: String?)
    /// A CORS preflight answered by the gateway.
    case preflight(origin: String, allowed: Bool)
    /// What matched is not served on the listener asked (404): why.
    case notServedHere(String)
}

/// Records the steps of a decision. `serve` uses ``NoTrace``, which compiles to nothing.
package protocol DecisionRecorder {
    mutating func record(_ step: @autoclosure () -> TraceStep)
}

package struct NoTrace: DecisionRecorder {
    package init() {}
    @inlinable package mutating func record(_ step: @autoclosure () -> TraceStep) {}
}

package struct Trace: DecisionRecorder, Sendable {
    package private(set) var steps: [TraceStep] = []
    package init() {}
    package mutating func record(_ step: @autoclosure () -> TraceStep) { self.steps.append(step()) }
}
