import PortcullisCrypto

/// Everything derived from one configuration, built once and then only read: the compiled
/// routes, their pre-rendered refusals, and the token verifier with its parsed keys.
package final class Policy: Sendable {
    package let config: GatewayConfig
    package let routes: [CompiledRoute]
    package let verifier: BearerVerifier
    /// Recently verified passwords and API keys.
    package let credentials = CredentialCache()
    /// Lower-case names of request headers that may carry credentials besides `Authorization`:
    /// the server passes these in ``RequestFacts/credentialHeaders``.
    package let credentialHeaderNames: Set<String>
    private let users: [String: UserConfig]
    /// Builds the header list of forwarded requests.
    let upstreamHeaders: UpstreamHeaders
    /// Lower-case names of the identity headers, removed from every client request.
    package let identityHeaderNames: Set<String>
    /// The token endpoint's JWKS document (asymmetric signing keys only), rendered once.
    package let publishedKeySet: String?
    private let publishedKeySetBytes: [UInt8]?
    /// `token_endpoint`'s path and its revocation path, compared with every request's.
    private let tokenEndpointPath: String?
    private let revocationPath: String?
    /// The route name the token endpoint's requests are logged and traced under.
    package static let tokenEndpointRoute = "token_endpoint"

    /// A class, immutable once built: the decision hands a route from function to function,
    /// and a reference costs one retain where a copy of the struct retained each of its fields.
    package final class CompiledRoute: Sendable {
        package let config: RouteConfig
        /// `nil` for a route only the decision service answers.
        package let upstream: UpstreamConfig?
        /// The answer to a request without credentials; `nil` for `auth: none`.
        package let unauthenticated: Refusal?
        /// The challenges of the schemes other than Bearer, added to Bearer error answers.
        let otherChallenges: [(name: String, value: String)]
        let schemes: [AuthScheme]
        /// The `scope` attribute of an insufficient_scope challenge.
        let scopeAttribute: String
        /// The answer to a Bearer token that lacks the route's scopes.
        let insufficientScope: Refusal
        /// The answer to a Bearer token whose roles or claims fall short of the route's.
        let insufficientPermissions: Refusal
        /// `Host` for the upstream when the client's is not preserved: the URL's authority,
        /// without a default port.
        let upstreamHost: String

        init(
            config: RouteConfig, upstream: UpstreamConfig?, unauthenticated: Refusal?,
            otherChallenges: [(name: String, value: String)], schemes: [AuthScheme], scopeAttribute: String,
            insufficientScope: Refusal, insufficientPermissions: Refusal, upstreamHost: String
        ) {
            self.config = config
            self.upstream = upstream
            self.unauthenticated = unauthenticated
            self.otherChallenges = otherChallenges
            self.schemes = schemes
            self.scopeAttribute = scopeAttribute
            self.insufficientScope = insufficientScope
            self.insufficientPermissions = insufficientPermissions
            self.upstreamHost = upstreamHost
        }
    }

    package init(config: GatewayConfig) {
        self.config = config
        self.verifier = BearerVerifier(config: config)
        var users: [String: UserConfig] = [:]
        for user in config.users { users[user.username] = user }
        self.users = users
        var names = Set<String>()
        for key in config.apiKeys {
            switch key.location {
            case .header: names.insert(key.param.lowercased())
            case .cookie: names.insert("cookie")
            case .query: break
            }
        }
        self.credentialHeaderNames = names
        // The identity headers and every claim header: the gateway's word alone, so a client's
        // own are removed on every route.
        self.identityHeaderNames = Set(
            (config.server.identityHeaders.all + config.server.claimHeaders.map(\.name)).map { $0.lowercased() })
        self.upstreamHeaders = UpstreamHeaders(
            server: config.server, identityHeaderNames: self.identityHeaderNames, credentialHeaderNames: names)
        self.publishedKeySet = config.tokenEndpoint?.publishedKeySet
        self.publishedKeySetBytes = self.publishedKeySet.map { Array($0.utf8) }
        self.tokenEndpointPath = config.tokenEndpoint?.path
        self.revocationPath = config.tokenEndpoint?.revocationPath
        let realm = config.server.realm
        self.routes = config.routes.compactMap { route in
            var upstream: UpstreamConfig?
            if let name = route.upstream {
                guard let configured = config.upstreams[name] else { return nil }
                upstream = configured
            }
            let schemes: [AuthScheme]
            switch route.auth {
            case .none: schemes = []
            case .optional: schemes = [.bearer]
            case .required(let list): schemes = list
            }
            let scope = (route.scopes.isEmpty ? route.scopesAny : route.scopes).joined(separator: " ")
            let challenges = schemes.map { Challenge.header($0, realm: realm, scope: scope) }
            let unauthenticated =
                schemes.isEmpty
                ? nil : Refusal(status: 401, headers: challenges, detail: "Not authenticated", reason: .missingCredentials)
            return CompiledRoute(
                config: route, upstream: upstream, unauthenticated: unauthenticated,
                otherChallenges: schemes.filter { $0 != .bearer }.map { Challenge.header($0, realm: realm, scope: scope) },
                schemes: schemes, scopeAttribute: scope,
                insufficientScope: Challenge.refusal(
                    .insufficientScope, realm: realm, description: "The access token lacks the required scope",
                    scope: scope.isEmpty ? nil : scope, status: config.server.insufficientScopeStatus, reason: .insufficientScope),
                insufficientPermissions: Challenge.refusal(
                    .insufficientScope, realm: realm, description: "The access token lacks the required roles or claims",
                    scope: scope.isEmpty ? nil : scope, status: config.server.insufficientScopeStatus, reason: .insufficientPermissions),
                upstreamHost: upstream.map { Self.hostHeader($0.target) } ?? "")
        }
    }

    /// The one decision function: normalize, match, authenticate, authorize. `serve`, `check`
    /// and `test` all call it, so they cannot disagree.
    /// - Parameters:
    ///   - now: seconds since 1970, injected so `check --now` and leeway tests need no clock.
    package func decide<R: DecisionRecorder>(_ request: RequestFacts, now: Double, recorder: inout R) -> Decision {
        var effects = DecisionEffects()
        return self.decide(request, now: now, recorder: &recorder, effects: &effects)
    }

    /// ``decide(_:now:recorder:)``, leaving in `effects` what the caller may remember (a
    /// verified token, a checked password or API key): deciding itself changes nothing, so
    /// the same facts always get the same answer, and a dry run warms no cache.
    package func decide<R: DecisionRecorder>(
        _ request: RequestFacts, now: Double, recorder: inout R, effects: inout DecisionEffects
    ) -> Decision {
        if let (refusal, why) = request.refusedBeforeDecision {
            recorder.record(.targetRefused(why))
            return .refuse(refusal)
        }
        let target: RequestTarget
        switch RequestTarget.normalize(request.rawTarget, mergeSlashes: self.config.server.mergeSlashes) {
        case .success(let normalized): target = normalized
        case .failure(let refusal):
            recorder.record(.targetRefused(refusal.detail))
            return .refuse(Refusal(status: 400, detail: refusal.detail, reason: .badTarget))
        }
        // Only methods the server's HTTP parser (llhttp) accepts can reach serve; refusing the
        // rest here keeps check and test in agreement with it. CONNECT asks for a tunnel, which a
        // gateway that authorizes requests one by one does not open.
        guard Self.servedMethods.contains(request.method) else {
            recorder.record(.targetRefused("method \(request.method) is not supported"))
            return .refuse(Refusal(status: 400, detail: "Bad Request", reason: .unsupportedMethod))
        }
        if let field = request.host, !RequestTarget.isValidHost(field) {
            recorder.record(.targetRefused("invalid Host header"))
            return .refuse(Refusal(status: 400, detail: "Invalid Host header", reason: .badHost))
        }
        let host = Self.matchingHost(target.authority ?? request.host)
        recorder.record(.normalized(path: target.path, query: target.query, host: host.map(String.init)))
        if let answer = self.gatewayDecision(method: request.method, path: target.path, host: target.authority ?? request.host) {
            recorder.record(.matched(route: Self.tokenEndpointRoute, location: self.config.tokenEndpoint!.location))
            guard request.listener == .proxy else {
                recorder.record(.notServedHere("the token endpoint and its documents are not served by the decision service"))
                var refusal = Refusal(status: 404, detail: "Not Found", reason: .notServedHere)
                refusal.routeName = Self.tokenEndpointRoute
                return .refuse(refusal)
            }
            return answer
        }
        let path = target.path[...]

        var allowed: Set<String> = []
        for route in self.routes where route.config.path.matches(path) {
            if !route.config.hosts.isEmpty {
                guard let host, route.config.hosts.contains(where: { $0.matches(host) }) else { continue }
            }
            // A CORS preflight is the route's whatever its methods.
            let preflight = route.config.cors != nil && Self.isPreflight(request)
            if !preflight && !route.config.methods.contains(request.method) {
                allowed.formUnion(route.config.methods.methods ?? [])
                continue
            }
            if route.upstream == nil && request.listener == .proxy {
                recorder.record(.matched(route: route.config.name, location: route.config.location))
                recorder.record(.notServedHere("the route has no upstream: only the decision service answers it"))
                var refusal = Refusal(status: 404, detail: "Not Found", reason: .decisionServiceOnly)
                refusal.routeName = route.config.name
                return .refuse(refusal)
            }
            if preflight, let answer = self.preflight(route, request: request, recorder: &recorder) { return answer }
            recorder.record(.matched(route: route.config.name, location: route.config.location))
            let decision = self.authorize(
                route, target: target, request: request, now: now, recorder: &recorder, effects: &effects)
            if case .verify = decision { return decision }
            if case .refuse(var refusal) = decision {
                refusal.routeName = route.config.name
                if self.config.server.dryRun || route.config.mode == .dryRun {
                    // Shadow mode: forwarded anyway, carrying the refusal it would have been.
                    var plan = self.plan(route, target: target, request: request, identity: refusal.shadowIdentity, shadow: true)
                    plan.shadowed = refusal
                    return self.withCORS(.forward(plan), route, request: request)
                }
                return self.withCORS(.refuse(refusal), route, request: request)
            }
            return self.withCORS(decision, route, request: request)
        }
        recorder.record(.noRoute(allowed: allowed.sorted()))
        if allowed.isEmpty { return .refuse(.notFound) }
        return .refuse(
            Refusal(
                status: 405, headers: [("Allow", allowed.sorted().joined(separator: ", "))], detail: "Method Not Allowed",
                reason: .methodNotAllowed))
    }

    /// The paths the gateway answers itself, ahead of every route: `token_endpoint.path` and its
    /// revocation endpoint `{path}/revoke` (POST only) and, with an asymmetric signing key, `/.well-known/jwks.json` and
    /// `/.well-known/oauth-authorization-server` (GET and HEAD). `nil` for any other path.
    /// `serve` asks this before it reads a body, and ``decide(_:now:recorder:)`` asks it first,
    /// so `check` and `test` see these paths exactly as `serve` does.
    /// - Parameters:
    ///   - path: the normalized path.
    ///   - host: the authority the client named (absolute-form target, else `Host`), for the
    ///     URLs in the metadata: they say where this client reached the gateway.
    package func gatewayDecision(method: String, path: String, host: String?) -> Decision? {
        guard let endpointPath = self.tokenEndpointPath else { return nil }
        if path == endpointPath || path == self.revocationPath {
            guard method == "POST" else { return .refuse(Self.methodNotAllowed("POST")) }
            return .serve(path == endpointPath ? .tokenEndpoint : .tokenRevocation)
        }
        guard let keySet = self.publishedKeySetBytes,
            path == TokenEndpointConfig.jwksPath || path == TokenEndpointConfig.metadataPath,
            let endpoint = self.config.tokenEndpoint
        else { return nil }
        guard method == "GET" || method == "HEAD" else { return .refuse(Self.methodNotAllowed("GET, HEAD")) }
        let body: [UInt8]
        if path == TokenEndpointConfig.jwksPath {
            body = keySet
        } else {
            let scheme = self.config.server.tls == nil ? "http" : "https"
            let listen = self.config.server.listen.map { "\($0)" } ?? "localhost"
            body = Array(endpoint.metadata(base: "\(scheme)://\(host ?? listen)").utf8)
        }
        return .serve(.document(body: body, headers: [("Cache-Control", "public, max-age=300"), ("Vary", "Host")]))
    }

    private static func methodNotAllowed(_ allow: String) -> Refusal {
        var refusal = Refusal(status: 405, headers: [("Allow", allow)], detail: "Method Not Allowed", reason: .methodNotAllowed)
        refusal.routeName = Self.tokenEndpointRoute
        return refusal
    }

    /// Decides, running any credential check in place. Only for callers off the event loops:
    /// `check`, `test`, and tests.
    package func decideCompletely<R: DecisionRecorder>(_ request: RequestFacts, now: Double, recorder: inout R) -> Decision {
        // The effect loop `serve` runs, with the password checks done here and now, no key set
        // fetched and nothing remembered; the last round is decided again for the trace.
        var loop = DecisionLoop(policy: self, facts: request, remembers: false)
        var step = loop.start(now: now)
        while true {
            switch step {
            case .verify(let check): step = loop.resume(verdict: check.run(), now: now)
            case .fetchKeySet: step = loop.keySetUnavailable()
            case .decided:
                return self.decide(loop.facts, now: now, recorder: &recorder)
            }
        }
    }

    package func decide(_ request: RequestFacts, now: Double) -> Decision {
        var recorder = NoTrace()
        return self.decide(request, now: now, recorder: &recorder)
    }

    private func authorize<R: DecisionRecorder>(
        _ route: CompiledRoute, target: RequestTarget, request: RequestFacts, now: Double, recorder: inout R,
        effects: inout DecisionEffects
    ) -> Decision {
        guard let unauthenticated = route.unauthenticated else {
            recorder.record(.credentials("not required (auth: none)"))
            return .forward(self.plan(route, target: target, request: request, identity: nil))
        }
        let optional = route.config.auth == .optional
        let acceptsBearer = route.schemes.contains(.bearer)
        if acceptsBearer, let assumed = request.assumedToken {
            recorder.record(.credentials("claims given with --claims, taken as a verified token of \(assumed.issuer)"))
            switch self.verifier.assume(assumed.claims, issuer: assumed.issuer, now: now) {
            case .failure(let rejection): return self.tokenRefusal(rejection, route, recorder: &recorder)
            case .success(let token):
                recorder.record(.tokenVerified(token))
                return self.admit(token, route, target: target, request: request, recorder: &recorder)
            }
        }
        switch PresentedCredentials.read(request.authorization, checkingToken: false) {
        case .malformed(let reason) where acceptsBearer:
            return self.malformedCredentials(reason, route, recorder: &recorder)
        case .bearer(let token) where acceptsBearer:
            // A token the cache holds was a b64token when it was verified: only the others
            // are checked, and one that is not is malformed, whatever it would verify as.
            let lookup = self.verifier.lookup(token, now: now)
            if lookup.cached == nil && !PresentedCredentials.isToken68(token) {
                return self.malformedCredentials(PresentedCredentials.invalidTokenCharacters, route, recorder: &recorder)
            }
            recorder.record(.credentials("Bearer token"))
            switch self.verifier.verify(token, lookup, now: now, remember: &effects.verifiedToken) {
            case .failure(let rejection):
                return self.tokenRefusal(rejection, route, recorder: &recorder)
            case .success(let token):
                recorder.record(.tokenVerified(token))
                return self.admit(token, route, target: target, request: request, recorder: &recorder)
            }
        case .basic(let encoded) where route.schemes.contains(.basic):
            return self.authorizeBasic(
                encoded, route, target: target, request: request, now: now, recorder: &recorder, effects: &effects)
        case .none, .otherScheme, .malformed, .bearer, .basic:
            if route.schemes.contains(.apiKey), self.presentsAPIKey(request, target: target) {
                return self.authorizeAPIKey(
                    route, target: target, request: request, now: now, recorder: &recorder, effects: &effects)
            }
            if optional {
                recorder.record(.credentials("none: forwarded anonymously (auth: optional)"))
                return .forward(self.plan(route, target: target, request: request, identity: nil))
            }
            recorder.record(.credentials("none that this route accepts"))
            return .refuse(unauthenticated)
        }
    }

    /// 400 invalid_request for an `Authorization` header a Bearer route cannot read.
    private func malformedCredentials<R: DecisionRecorder>(_ reason: String, _ route: CompiledRoute, recorder: inout R) -> Decision {
        recorder.record(.credentials("malformed Authorization header: \(reason)"))
        return .refuse(
            Challenge.refusal(
                .invalidRequest, realm: self.config.server.realm, description: reason, otherChallenges: route.otherChallenges,
                reason: .invalidRequest))
    }

    // MARK: Basic and API keys

    private func authorizeBasic<R: DecisionRecorder>(
        _ encoded: Substring, _ route: CompiledRoute, target: RequestTarget, request: RequestFacts, now: Double,
        recorder: inout R, effects: inout DecisionEffects
    ) -> Decision {
        recorder.record(.credentials("Basic credentials"))
        // RFC 7617: base64 of "user-id:password", UTF-8; the password may contain colons.
        guard let decoded = Base64.decode(encoded), let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
            let username = String(validating: decoded[..<colon], as: UTF8.self), !username.isEmpty
        else {
            recorder.record(.credentials("malformed Basic credentials"))
            return .refuse(self.basicRefusal(route, detail: "Not authenticated", reason: .malformedBasic))
        }
        let password = Array(decoded[(colon + 1)...])
        let cacheKey = self.credentials.key("basic", Array(username.utf8), password)
        var verified = self.credentials.lookup(cacheKey, now: now) == .user(username)
        if !verified {
            guard let verdict = request.verdict, verdict.cacheKey == cacheKey else {
                // Unknown users are checked against a dummy hash, so the time taken does not tell.
                let hash = self.users[username]?.passwordHash ?? Argon2.dummyHash
                return .verify(CredentialCheck(candidates: [hash], secret: password, cacheKey: cacheKey))
            }
            if let wait = verdict.retryAfter {
                recorder.record(.credentials("too many failed logins from this address"))
                return .refuse(Self.throttled(retryAfter: wait))
            }
            verified = verdict.matched != nil && self.users[username] != nil
            if verified { effects.credential = (cacheKey, .user(username)) }
        }
        guard verified, let user = self.users[username] else {
            recorder.record(.credentials("password rejected for user \(username)"))
            return .refuse(self.basicRefusal(route, detail: "Incorrect username or password", reason: .badPassword))
        }
        if user.disabled {
            recorder.record(.credentials("user \(username) is disabled"))
            return .refuse(self.basicRefusal(route, detail: "Inactive user", reason: .inactiveUser))
        }
        recorder.record(.credentials("password verified for user \(user.username)"))
        // The configured name, byte for byte: Swift compares names by canonical equivalence, so
        // the client's spelling (NFD for NFC) may differ, and upstreams compare bytes.
        return self.grant(
            Identity(subject: user.username, scopes: user.scopes, method: .basic), route, target: target, request: request,
            recorder: &recorder)
    }

    /// The answer to a password or API key the login throttle held back (RFC 6585 §4).
    static func throttled(retryAfter: Int) -> Refusal {
        Refusal(status: 429, headers: [("Retry-After", String(retryAfter))], detail: "Too many failed attempts", reason: .throttled)
    }

    private func basicRefusal(_ route: CompiledRoute, detail: String, reason: Reason) -> Refusal {
        Refusal(status: 401, headers: route.unauthenticated?.headers ?? [], detail: detail, reason: reason)
    }

    /// What a request presents where an API key is looked for.
    private enum Presented: Equatable {
        case absent
        case value([UInt8])
        /// The parameter appears more than once with different values. Refused: an upstream
        /// that reads the last one would see another key than the one the gateway checked.
        case conflicting
    }

    /// The value a request presents where `key` says to look for it: every occurrence counts.
    private func presented(_ key: APIKeyConfig, _ request: RequestFacts, target: RequestTarget) -> Presented {
        var found: [UInt8]?
        func add(_ value: [UInt8]) -> Bool {
            if let found, found != value { return false }
            found = value
            return true
        }
        switch key.location {
        case .header:
            let name = key.param.lowercased()
            // Values arrive without leading or trailing white space (``RequestFacts``).
            for header in request.credentialHeaders where header.name.lowercased() == name {
                if !add(Array(header.value.utf8)) { return .conflicting }
            }
        case .query:
            for value in QueryParameters.values(of: key.param, in: target.query) where !add(value) { return .conflicting }
        case .cookie:
            for header in request.credentialHeaders where header.name.lowercased() == "cookie" {
                for value in QueryParameters.cookies(key.param, in: header.value) where !add(Array(value.utf8)) {
                    return .conflicting
                }
            }
        }
        return found.map(Presented.value) ?? .absent
    }

    /// Whether the request presents a value where any configured key would be looked for.
    private func presentsAPIKey(_ request: RequestFacts, target: RequestTarget) -> Bool {
        self.config.apiKeys.contains { self.presented($0, request, target: target) != .absent }
    }

    private func authorizeAPIKey<R: DecisionRecorder>(
        _ route: CompiledRoute, target: RequestTarget, request: RequestFacts, now: Double, recorder: inout R,
        effects: inout DecisionEffects
    ) -> Decision {
        recorder.record(.credentials("API key"))
        let refusal = Refusal(status: 401, headers: route.unauthenticated?.headers ?? [], detail: "Not authenticated", reason: .badApiKey)
        var values: [[UInt8]?] = []
        for key in self.config.apiKeys {
            switch self.presented(key, request, target: target) {
            case .absent: values.append(nil)
            case .value(let value): values.append(value)
            case .conflicting:
                recorder.record(.credentials("the API key parameter '\(key.param)' is given twice with different values"))
                return .refuse(refusal)
            }
        }
        var matched: Int?
        // High-entropy keys: compare SHA-256 digests in constant time, each key against the value
        // at its own location, with no early exit.
        for (position, key) in self.config.apiKeys.enumerated() {
            guard case .sha256(let expected) = key.hash, let value = values[position] else { continue }
            if ConstantTime.equals(DigestAlgorithm.sha256.hash(value), expected), matched == nil { matched = position }
        }
        if matched == nil {
            // Argon2 keys: the first location that presents a value decides which keys are tried.
            let argon2Keys = self.config.apiKeys.enumerated().compactMap { position, key -> (Int, String, [UInt8])? in
                guard case .argon2(let hash) = key.hash, let value = values[position] else { return nil }
                return (position, hash, value)
            }
            if let first = argon2Keys.first {
                let candidates = argon2Keys.filter { $0.2 == first.2 }
                let cacheKey = self.credentials.key("api_key", first.2)
                if case .apiKey(let position)? = self.credentials.lookup(cacheKey, now: now) {
                    matched = position
                } else if let verdict = request.verdict, verdict.cacheKey == cacheKey {
                    if let wait = verdict.retryAfter {
                        recorder.record(.credentials("too many failed logins from this address"))
                        return .refuse(Self.throttled(retryAfter: wait))
                    }
                    if let found = verdict.matched {
                        matched = candidates[found].0
                        effects.credential = (cacheKey, .apiKey(candidates[found].0))
                    }
                } else {
                    return .verify(CredentialCheck(candidates: candidates.map(\.1), secret: first.2, cacheKey: cacheKey, kind: .apiKey))
                }
            }
        }
        guard let matched else {
            recorder.record(.credentials("the API key matches no configured key"))
            return .refuse(refusal)
        }
        let key = self.config.apiKeys[matched]
        recorder.record(.credentials("API key '\(key.name)'"))
        return self.grant(Identity(subject: key.name, scopes: key.scopes, method: .apiKey), route, target: target, request: request,
            recorder: &recorder)
    }

    /// The route's scope rules against what the credentials hold. A Bearer token that falls
    /// short gets RFC 6750's insufficient_scope challenge; Basic and API-key identities get
    /// none, since other credentials of the same kind would not help.
    func grant<R: DecisionRecorder>(
        _ identity: Identity, claims: JSONValue? = nil, _ route: CompiledRoute, target: RequestTarget,
        request: RequestFacts, recorder: inout R
    ) -> Decision {
        let missing = Self.missing(all: route.config.scopes, any: route.config.scopesAny, held: identity.scopes)
        recorder.record(.scopes(required: route.config.scopes, requiredAny: route.config.scopesAny, granted: identity.scopes, missing: missing))
        let scopesHold = missing.isEmpty
        let rulesHold = self.tokenRulesHold(route.config, identity: identity, claims: claims, recorder: &recorder)
        if !scopesHold || !rulesHold {
            let server = self.config.server
            var refusal: Refusal
            if identity.method == .bearer {
                refusal = scopesHold ? route.insufficientPermissions : route.insufficientScope
            } else {
                // Every 401 carries a challenge (RFC 9110 §15.5.2): the route's, as without credentials.
                let challenge =
                    server.insufficientScopeStatus == 401
                    ? route.unauthenticated?.headers.filter { $0.name == Challenge.headerName } ?? [] : []
                refusal = Refusal(
                    status: server.insufficientScopeStatus, headers: challenge, detail: "Not enough permissions",
                    reason: .insufficientScope)
            }
            refusal.shadowIdentity = identity
            return .refuse(refusal)
        }
        return .forward(self.plan(route, target: target, request: request, identity: identity))
    }

    /// - Parameter shadow: a refused request forwarded in shadow mode; a Basic password it
    ///   carries is never passed on by default, right or wrong.
    func plan(
        _ route: CompiledRoute, target: RequestTarget, request: RequestFacts, identity: Identity?,
        shadow: Bool = false
    ) -> ForwardPlan {
        var path = target.path
        if let prefix = route.config.stripPrefix, path.hasPrefix(prefix) {
            let rest = path.dropFirst(prefix.count)
            if rest.isEmpty {
                path = "/"
            } else if rest.first == "/" {
                path = String(rest)
            }
        }
        let origin: String
        let upstreamHost: String?
        switch route.upstream?.target {
        case .http(let base, let basePath):
            origin = base
            path = basePath + path
            upstreamHost = route.upstreamHost
        case .unixSocket:
            origin = "http://localhost"
            upstreamHost = "localhost"
        case nil:
            // Answered by the decision service only: nothing is sent anywhere.
            origin = ""
            upstreamHost = nil
        }
        var upstreamTarget = path
        if let query = target.query {
            upstreamTarget += "?"
            upstreamTarget += query
        }
        // Default: pass Authorization on for Bearer (and public) routes; never a Basic password
        // or an API key unless the route asks for it.
        var defaultForward = identity.map { $0.method == .bearer } ?? true
        if shadow && identity == nil, case .basic = PresentedCredentials.read(request.authorization) { defaultForward = false }
        let clientHost = target.authority ?? request.host
        let rules = UpstreamHeaders.Rules(
            forwardAuthorization: route.config.forwardAuthorization ?? defaultForward,
            stripAPIKeyHeaders: route.schemes.contains(.apiKey) && !(route.config.forwardAuthorization ?? false),
            host: (route.upstream?.preserveHost ?? true) ? clientHost : upstreamHost)
        return ForwardPlan(
            route: route, method: request.method,
            upstreamTarget: upstreamTarget, upstreamURL: route.upstream == nil ? "" : origin + upstreamTarget, identity: identity,
            // The decision service forwards nothing: the edge proxy builds the upstream's head.
            headers: request.listener == .decisions
                ? [] : self.upstreamHeaders.build(request, clientHost: clientHost, identity: identity, rules: rules))
    }

    /// The `Host` an upstream URL implies (`http://api:80` is `api`, as libcurl would send it).
    static func hostHeader(_ target: UpstreamConfig.Target) -> String {
        guard case .http(let origin, _) = target, let colon = origin.firstIndex(of: ":"),
            origin[colon...].hasPrefix("://")
        else { return "localhost" }
        let scheme = origin[..<colon].lowercased()
        var authority = origin[origin.index(colon, offsetBy: 3)...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        for (name, port) in [("http", ":80"), ("https", ":443")] where scheme == name && authority.hasSuffix(port) {
            authority = authority.dropLast(port.count)
        }
        return String(authority)
    }

    /// The request methods a route can ever see: those llhttp, the server's HTTP/1.1 parser,
    /// knows (upper-case, exactly), less CONNECT (a tunnel) and M-SEARCH (SSDP, which the
    /// parser hands over under another name and no HTTP service behind a gateway answers).
    /// Anything else is 400 before routing, and a route that lists it is a configuration error.
    package static let servedMethods: Set<String> = [
        "DELETE", "GET", "HEAD", "POST", "PUT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE",
        "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY",
        "CHECKOUT", "MERGE", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK",
        "UNLINK", "SOURCE", "QUERY",
    ]

    /// The host a route's `hosts` are compared with: lower-case, without port or trailing dot.
    static func matchingHost(_ raw: String?) -> Substring? {
        guard let raw, !raw.isEmpty else { return nil }
        // Byte-wise: every delimiter here is ASCII, and String indices into the UTF-8 view are
        // valid for the string itself.
        let bytes = raw.utf8
        var end = bytes.endIndex
        if bytes.first == UInt8(ascii: "[") {
            if let close = bytes.firstIndex(of: UInt8(ascii: "]")) { end = bytes.index(after: close) }
        } else if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        if end > bytes.startIndex, bytes[bytes.index(before: end)] == UInt8(ascii: ".") { end = bytes.index(before: end) }
        let host = raw[raw.startIndex..<end]
        if host.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) { return Substring(host.lowercased()) }
        return host
    }
}
