import Foundation
import Logging
import NIOCore
import PortcullisCore
import PortcullisCrypto

/// The built-in OAuth2 token endpoint (contract §6): the password grant against local users,
/// the refresh grant with rotation and reuse detection, and RFC 7009 revocation.
///
/// Argon2 runs on the hashing pool and the store's work off the event loops (its own writer
/// queue for SQLite, asynchronous I/O for PostgreSQL); the event loop only parses and writes.
/// When the store fails, the answer is 503 and no token is issued that the store has not
/// recorded.
final class TokenService: Sendable {
    struct Answer: Sendable {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        /// For the access log and metrics.
        var subject: String?
        var outcome: Reason
    }

    /// A token request, or a revocation (`POST {path}/revoke`).
    private enum Request {
        case grant(TokenRequest)
        case revocation(RevocationRequest)
    }

    let store: any RefreshTokenStore
    private let hashPool: PasswordHashPool
    private let throttle: any LoginThrottle
    private let metrics: GatewayMetrics
    private let logger: Logger

    /// The answer while the store cannot be reached or fails (contract §12).
    static let storeUnavailable = Answer(
        status: 503, headers: [("Retry-After", "5"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        body: Array(JSONText.object([("detail", "Service Unavailable")]).utf8), outcome: .storeUnavailable)

    init(
        store: any RefreshTokenStore, hashPool: PasswordHashPool, throttle: any LoginThrottle, metrics: GatewayMetrics,
        logger: Logger
    ) {
        self.store = store
        self.hashPool = hashPool
        self.throttle = throttle
        self.metrics = metrics
        self.logger = logger
    }

    /// Answers one token request, or with `revocation`, one revocation request. `policy` is
    /// the policy the request arrived under.
    func answer(
        policy: Policy, endpoint: TokenEndpointConfig, revocation: Bool = false, contentType: String?, authorization: [String],
        body: [UInt8], client address: String, requestID: String = "-", eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        let now = WallClock.now()
        let request: Request
        let clientCredentials: (id: String, secret: String, viaBasic: Bool)?
        do {
            let fields = try FormFields.parse(contentType: contentType, body: body)
            request =
                revocation
                ? .revocation(try RevocationRequest.read(fields))
                : .grant(try TokenRequest.read(fields, requireGrantType: endpoint.requireGrantType))
            clientCredentials = try Self.clientCredentials(fields, authorization, realm: policy.config.server.realm)
        } catch {
            return eventLoop.makeSucceededFuture(Self.failure(error))
        }
        // Every key the request could fail under is looked at before any Argon2 work, so a
        // throttled address or client learns nothing from the answer, not even that a guessed
        // client secret was right. A refresh or revocation without client credentials guesses
        // nothing (the token is 256 random bits) and is not held up by its address's failed logins.
        let guesses: Bool
        if case .grant(.password) = request { guesses = true } else { guesses = clientCredentials != nil }
        if guesses, let wait = self.throttle.retryAfter(address: address, now: now) {
            self.metrics.loginFailure(reason: "throttled")
            return eventLoop.makeSucceededFuture(Self.failure(.tooManyAttempts(retryAfter: wait)))
        }
        // Client authentication (RFC 6749 §2.3.1), when clients are configured or required.
        var clientCheck: EventLoopFuture<String?> = eventLoop.makeSucceededFuture(nil)
        if let credentials = clientCredentials {
            let client = endpoint.clients.first { $0.clientID == credentials.id }
            let check = CredentialCheck(
                candidates: [client?.secretHash ?? Argon2.dummyHash], secret: Array(credentials.secret.utf8),
                cacheKey: policy.credentials.key("client", Array(credentials.id.utf8), Array(credentials.secret.utf8)))
            if case .user(credentials.id)? = policy.credentials.lookup(check.cacheKey, now: now) {
                clientCheck = eventLoop.makeSucceededFuture(credentials.id)
            } else {
                guard let verification = self.hashPool.run(check, on: eventLoop) else {
                    return eventLoop.makeSucceededFuture(Self.failure(.busy))
                }
                clientCheck = verification.flatMapThrowing { verdict in
                    guard verdict.matched != nil, client != nil else {
                        self.throttle.recordFailure(address: address, now: now)
                        self.metrics.loginFailure(reason: "invalid_client")
                        throw OAuthError.invalidClient(realm: policy.config.server.realm, basic: credentials.viaBasic)
                    }
                    policy.credentials.insert(check.cacheKey, .user(credentials.id), now: now)
                    return credentials.id
                }
            }
        } else if endpoint.requireClientAuth {
            return eventLoop.makeSucceededFuture(Self.failure(.invalidClient(realm: policy.config.server.realm, basic: false)))
        }
        return clientCheck.flatMap { clientID in
            switch request {
            case .grant(.password(let username, let password, let scopes)):
                return self.passwordGrant(
                    policy: policy, endpoint: endpoint, username: username, password: password, scopes: scopes, clientID: clientID,
                    address: address, now: now, eventLoop: eventLoop)
            case .grant(.refresh(let token, let scopes)):
                return self.refreshGrant(
                    policy: policy, endpoint: endpoint, token: token, scopes: scopes, clientID: clientID, now: now,
                    requestID: requestID, eventLoop: eventLoop)
            case .revocation(let revocation):
                return self.revoke(revocation.token, clientID: clientID, eventLoop: eventLoop)
            }
        }.flatMapErrorThrowing { error in
            guard let oauth = error as? OAuthError else {
                self.logger.error("token endpoint failure", metadata: ["error": "\(error)"])
                return Answer(
                    status: 500, headers: [], body: Array(JSONText.object([("detail", "Internal Server Error")]).utf8), outcome: .error)
            }
            return Self.failure(oauth)
        }
    }

    private func passwordGrant(
        policy: Policy, endpoint: TokenEndpointConfig, username: String, password: String, scopes: [String]?, clientID: String?,
        address: String, now: Double, eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        let user = policy.config.users.first { $0.username == username }
        // Unknown users are checked against a dummy hash, so the answer takes as long.
        let check = CredentialCheck(
            candidates: [user?.passwordHash ?? Argon2.dummyHash], secret: Array(password.utf8),
            cacheKey: policy.credentials.key("login", Array(username.utf8)))
        guard let verification = self.hashPool.run(check, on: eventLoop) else {
            return eventLoop.makeSucceededFuture(Self.failure(.busy))
        }
        return verification.flatMap { verdict in
            guard verdict.matched != nil, let user else {
                self.throttle.recordFailure(address: address, now: now)  // checked in `answer`
                self.metrics.loginFailure(reason: "bad_credentials")
                return eventLoop.makeSucceededFuture(Self.failure(.badCredentials))
            }
            // Only now, after the password verified, may the answer reveal that the user is disabled.
            if user.disabled {
                self.metrics.loginFailure(reason: "inactive_user")
                return eventLoop.makeSucceededFuture(Self.failure(.inactiveUser))
            }
            let granted: [String]
            do {
                granted = try endpoint.grant(scopes, allowed: user.scopes)
            } catch {
                return eventLoop.makeSucceededFuture(Self.failure(error))
            }
            return self.issue(endpoint: endpoint, subject: user.username, scopes: granted, clientID: clientID, family: nil, now: now, eventLoop: eventLoop)
        }
    }

    private func refreshGrant(
        policy: Policy, endpoint: TokenEndpointConfig, token: String, scopes: [String]?, clientID: String?, now: Double,
        requestID: String, eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        guard endpoint.refreshTokenTTL > 0 else {
            return eventLoop.makeSucceededFuture(Self.failure(.unsupportedGrantType("refresh_token")))
        }
        let digest = DigestAlgorithm.sha256.hash(Array(token.utf8))
        let replacement = Self.newRefreshToken()
        let users = policy.config.users
        let declared = Set(endpoint.scopes.map(\.name))
        let ttl = Double(endpoint.refreshTokenTTL) / 1000
        let store = self.store
        return self.storeFuture("redeem", on: eventLoop) {
            try await store.redeem(digest: digest, replacementDigest: replacement.digest, now: now) { record in
                guard let user = users.first(where: { $0.username == record.subject }), !user.disabled else {
                    return .failure(.inactiveUser)
                }
                // Issued to this client, or to no client and presented by none (RFC 6749 §6).
                guard record.clientID == clientID else {
                    return .failure(.invalidGrant("The refresh token was issued to another client"))
                }
                if case .failure(let error) = Self.refreshedScopes(record.scopes, requested: scopes, user: user, declared: declared) {
                    return .failure(error)
                }
                // The new refresh token carries the grant of the one it replaces (RFC 6749 §6);
                // only the access token is narrowed.
                return .success(
                    RefreshRecord(family: record.family, subject: record.subject, scopes: record.scopes, clientID: record.clientID, expiresAt: now + ttl))
            }
        }.flatMap { redemption in
            guard let redemption else { return eventLoop.makeSucceededFuture(Self.storeUnavailable) }
            switch redemption {
            case .rotated(_, let next):
                guard let user = users.first(where: { $0.username == next.subject }) else {
                    return eventLoop.makeSucceededFuture(Self.failure(.inactiveUser))
                }
                switch Self.refreshedScopes(next.scopes, requested: scopes, user: user, declared: declared) {
                case .failure(let error):
                    return eventLoop.makeSucceededFuture(Self.failure(error))
                case .success(let granted):
                    return self.answerWithTokens(
                        endpoint: endpoint, subject: next.subject, scopes: granted, clientID: next.clientID,
                        refreshToken: replacement.token, now: now, eventLoop: eventLoop)
                }
            case .reused(let subject):
                self.logger.warning(
                    "a retired refresh token was presented; its family is revoked",
                    metadata: ["request_id": "\(requestID)", "subject": "\(subject)"])
                self.metrics.loginFailure(reason: "refresh_reuse")
                return eventLoop.makeSucceededFuture(Self.failure(.invalidGrant("The refresh token is invalid")))
            case .unknown, .expired, .revoked:
                return eventLoop.makeSucceededFuture(Self.failure(.invalidGrant("The refresh token is invalid")))
            case .refused(let error):
                return eventLoop.makeSucceededFuture(Self.failure(error))
            }
        }
    }

    /// The access token's scopes on a refresh: those asked for, which must lie within the
    /// family's grant (a refresh may narrow, never widen: RFC 6749 §6), or the whole grant; in
    /// either case only scopes the user still holds and the endpoint still declares. A scope
    /// taken from the user after the login is not issued again.
    private static func refreshedScopes(
        _ grant: [String], requested: [String]?, user: UserConfig, declared: Set<String>
    ) -> Result<[String], OAuthError> {
        let holds = { (scope: String) in user.scopes.contains(scope) && (declared.isEmpty || declared.contains(scope)) }
        guard let requested, !requested.isEmpty else { return .success(grant.filter(holds)) }
        var granted: [String] = []
        for scope in requested where !granted.contains(scope) {
            guard grant.contains(scope) else { return .failure(.invalidScope("The requested scope exceeds the original grant")) }
            guard holds(scope) else { return .failure(.invalidScope("The scope \(scope) is not available to this user")) }
            granted.append(scope)
        }
        return .success(granted)
    }

    /// Mints the access token and, when refresh tokens are on, stores a new family.
    private func issue(
        endpoint: TokenEndpointConfig, subject: String, scopes: [String], clientID: String?, family: String?, now: Double,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        guard endpoint.refreshTokenTTL > 0 else {
            return self.answerWithTokens(
                endpoint: endpoint, subject: subject, scopes: scopes, clientID: clientID, refreshToken: nil, now: now, eventLoop: eventLoop)
        }
        let refresh = Self.newRefreshToken()
        let record = RefreshRecord(
            family: family ?? SecureRandom.hex(16), subject: subject, scopes: scopes, clientID: clientID,
            expiresAt: now + Double(endpoint.refreshTokenTTL) / 1000)
        let store = self.store
        return self.storeFuture("issue", on: eventLoop) {
            try await store.issue(digest: refresh.digest, record)
        }.flatMap { recorded in
            guard recorded != nil else { return eventLoop.makeSucceededFuture(Self.storeUnavailable) }
            return self.answerWithTokens(
                endpoint: endpoint, subject: subject, scopes: scopes, clientID: clientID, refreshToken: refresh.token, now: now,
                eventLoop: eventLoop)
        }
    }

    /// RFC 7009: revokes the family of a refresh token issued to this client (or to no client,
    /// when none authenticated). The answer is 200 whether or not the token was known, so it
    /// tells nothing about other clients' tokens; an access token is not stored and stays
    /// valid until it expires.
    private func revoke(_ token: String, clientID: String?, eventLoop: any EventLoop) -> EventLoopFuture<Answer> {
        let digest = DigestAlgorithm.sha256.hash(Array(token.utf8))
        let store = self.store
        return self.storeFuture("revoke", on: eventLoop) {
            try await store.revokeFamily(digest: digest, clientID: clientID)
        }.map { revoked in
            guard let revoked else { return Self.storeUnavailable }
            if revoked { self.logger.info("a refresh token family was revoked on request") }
            return Answer(
                status: 200, headers: [("Cache-Control", "no-store"), ("Pragma", "no-cache")], body: Array("{}".utf8),
                outcome: revoked ? .revoked : .revokeUnknownToken)
        }
    }

    /// Runs a store operation off the event loop. A failure is counted, logged, and comes back
    /// as `nil`: the caller answers 503 (``storeUnavailable``) and issues nothing.
    private func storeFuture<Value: Sendable>(
        _ operation: String, on eventLoop: any EventLoop, _ body: @escaping @Sendable () async throws -> Value
    ) -> EventLoopFuture<Value?> {
        eventLoop.makeFutureWithTask {
            do {
                return try await body()
            } catch {
                self.metrics.storeError(operation: operation)
                // A PostgreSQL store logs when it becomes unreachable and when it is back.
                self.logger.log(
                    level: error is PostgresDatabase.Failure ? .debug : .error, "token store operation failed",
                    metadata: ["operation": "\(operation)", "error": "\(error)"])
                return nil
            }
        }
    }

    private func answerWithTokens(
        endpoint: TokenEndpointConfig, subject: String, scopes: [String], clientID: String?, refreshToken: String?, now: Double,
        eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        let ttl = max(1, endpoint.accessTokenTTL / 1000)
        do {
            let access = try TokenMinter.mint(endpoint, subject: subject, scopes: scopes, ttlSeconds: ttl, now: now, clientID: clientID)
            var fields: [String: JSONValue] = [
                "access_token": .string(access), "token_type": .string("bearer"), "expires_in": .number(Double(ttl)),
                "scope": .string(scopes.joined(separator: " ")),
            ]
            if let refreshToken { fields["refresh_token"] = .string(refreshToken) }
            self.metrics.tokenIssued()
            return eventLoop.makeSucceededFuture(
                Answer(
                    status: 200, headers: [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
                    body: Array(JSONValue.object(fields).serialized.utf8), subject: subject, outcome: .issued))
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    /// 256 random bits, base64url; only their SHA-256 digest is stored.
    private static func newRefreshToken() -> (token: String, digest: [UInt8]) {
        let token = Base64URL.encode(SecureRandom.bytes(32))
        return (token, DigestAlgorithm.sha256.hash(Array(token.utf8)))
    }

    static func failure(_ oauth: OAuthError) -> Answer {
        Answer(
            status: oauth.status, headers: oauth.headers + [("Cache-Control", "no-store"), ("Pragma", "no-cache")], body: oauth.body,
            outcome: oauth.logReason ?? oauth.error)
    }

    static func failure(_ error: any Error) -> Answer {
        let oauth = (error as? OAuthError) ?? .invalidRequest("Malformed request")
        return Answer(
            status: oauth.status, headers: oauth.headers + [("Cache-Control", "no-store"), ("Pragma", "no-cache")], body: oauth.body,
            outcome: oauth.logReason ?? oauth.error)
    }

    /// Client credentials from HTTP Basic (form-urlencoded inside, RFC 6749 §2.3.1) or the form.
    /// A `client_id` without a secret is refused: every configured client has a secret, so it
    /// names either a client that did not authenticate or one that does not exist (§5.2).
    private static func clientCredentials(_ fields: FormFields, _ authorization: [String], realm: String) throws(OAuthError)
        -> (id: String, secret: String, viaBasic: Bool)?
    {
        if let header = authorization.first, header.lowercased().hasPrefix("basic ") {
            guard let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingSpaces()),
                let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":"),
                let id = String(text[..<colon]).removingPercentEncoding,
                let secret = String(text[text.index(after: colon)...]).removingPercentEncoding
            else { throw .invalidRequest("Malformed client credentials") }
            if fields["client_secret"] != nil { throw .invalidRequest("Client credentials given twice") }
            if let named = fields["client_id"], named != id { throw .invalidRequest("The client_id does not match the client credentials") }
            return (id, secret, true)
        }
        guard let id = fields["client_id"], !id.isEmpty else {
            if fields["client_secret"] != nil { throw .invalidRequest("Missing client_id") }
            return nil
        }
        guard let secret = fields["client_secret"] else { throw .invalidClient(realm: realm, basic: false) }
        return (id, secret, false)
    }
}
