/// Which outcomes of each route a set of policy cases produced (`portcullis test --coverage`).
///
/// A route's outcomes are the answers its own rules can give: `allow` (forwarded), `401` (no or
/// bad credentials) and `403` (valid credentials that lack the route's scopes). An `auth: none`
/// route has only `allow`; a route without `scopes` or `scopes_any` cannot refuse for scope, so
/// it has `allow` and `401`. A case reaches an outcome when its decision matched the route with
/// that answer. Answers that are not the route's own rules (400, 404, 405, 429) reach none.
///
/// The `403` outcome is keyed by the refusal's reason, not its status: with
/// `server.insufficient_scope_status: 401` the insufficient-scope refusal still counts as `403`,
/// so the figure does not depend on that setting. Shadow mode forwards count as the answer
/// enforcement would have given.
package struct PolicyCoverage: Sendable {
    /// One answer a route can give. The raw value is how it is printed.
    package enum Outcome: String, CaseIterable, Hashable, Sendable {
        case allow
        case unauthenticated = "401"
        case insufficientScope = "403"
    }

    /// The route and outcome one decision reached.
    package struct Reach: Hashable, Sendable {
        package var route: String
        package var outcome: Outcome

        package init(route: String, outcome: Outcome) {
            self.route = route
            self.outcome = outcome
        }
    }

    /// The coverage of one route.
    package struct Route: Sendable {
        package var name: String
        /// The route's `- name:` line.
        package var location: SourceLocation
        /// Every outcome the route can give, in the order `allow`, `401`, `403`.
        package var outcomes: [Outcome]
        /// The outcomes some case reached, in the same order.
        package var reached: [Outcome]

        package var unreached: [Outcome] { self.outcomes.filter { !self.reached.contains($0) } }
    }

    /// In configuration order.
    package var routes: [Route]

    /// - Parameters:
    ///   - routes: the configuration's routes.
    ///   - reaches: what each case's decision reached; a case may count whether or not its
    ///     expectations held, since the decision is the same.
    package init(routes: [RouteConfig], reaches: some Sequence<Reach>) {
        let seen = Set(reaches)
        self.routes = routes.map { route in
            let outcomes = Self.outcomes(of: route)
            return Route(
                name: route.name, location: route.location, outcomes: outcomes,
                reached: outcomes.filter { seen.contains(Reach(route: route.name, outcome: $0)) })
        }
    }

    /// The outcomes a route is covered for (contract §13): `auth: none` has only `allow`,
    /// `optional` has `allow` and `401`, every other route `allow`, `401` and `403` (scopes,
    /// roles or claims that fall short). A protected route without such rules has a `403` no
    /// case can reach: the report names it, and the figure says the policy has a rule-free
    /// protected route.
    package static func outcomes(of route: RouteConfig) -> [Outcome] {
        switch route.auth {
        case .none: return [.allow]
        case .optional: return [.allow, .unauthenticated]
        case .required: return [.allow, .unauthenticated, .insufficientScope]
        }
    }

    /// The route outcome a decision reached, or `nil` when it is not one of a route's own
    /// answers (no route matched, a malformed request, the login throttle, the gateway's own
    /// paths).
    package static func reach(of decision: Decision) -> Reach? {
        switch decision {
        case .forward(let plan):
            guard let shadowed = plan.shadowed else { return Reach(route: plan.routeName, outcome: .allow) }
            return self.outcome(of: shadowed).map { Reach(route: plan.routeName, outcome: $0) }
        case .refuse(let refusal):
            guard let route = refusal.routeName, let outcome = self.outcome(of: refusal) else { return nil }
            return Reach(route: route, outcome: outcome)
        case .verify, .serve:
            return nil
        }
    }

    private static func outcome(of refusal: Refusal) -> Outcome? {
        if Self.insufficientReasons.contains(refusal.reason) { return .insufficientScope }
        if refusal.status == 401 { return .unauthenticated }
        return nil
    }

    /// The reasons of refusals of credentials that fall short of the route's scopes, roles or
    /// claims, whatever their status.
    static let insufficientReasons: Set<Reason> = [.insufficientScope, .insufficientPermissions]

    /// Outcomes some case reached.
    package var covered: Int { self.routes.reduce(0) { $0 + $1.reached.count } }

    /// Outcomes the routes can give.
    package var total: Int { self.routes.reduce(0) { $0 + $1.outcomes.count } }

    /// The covered share in tenths of a percent, rounded down, so that a figure short of
    /// everything never prints as 100%. Nothing to cover counts as everything covered.
    package var permille: Int {
        self.total == 0 ? 1000 : self.covered * 1000 / self.total
    }

    /// `85.7`: the percentage with one decimal, rounded down.
    package var percentText: String { "\(self.permille / 10).\(self.permille % 10)" }

    /// Whether the exact covered share is at least `percent` percent.
    package func meets(_ percent: Double) -> Bool {
        Double(self.covered) * 100 >= percent * Double(self.total)
    }
}
