package import PortcullisCrypto

/// Verifies Bearer JWTs against the configured issuers. Built once per policy; all key
/// material is parsed already, so verification only hashes, verifies and reads claims.
package struct BearerVerifier: Sendable {
    /// Tokens above this size are refused before any parsing.
    package static let maximumTokenBytes = 8192

    let issuers: [String: IssuerConfig]
    let leeway: Double
    let scopeClaims: [ClaimPath]
    let cache: VerifiedTokenCache?
    /// The gateway's own issuer, whose subjects must be enabled local users.
    let localIssuer: String?
    let activeUsers: Set<String>
    let disabledUsers: Set<String>
    let checksLocalUsers: Bool
    /// Key sets fetched from `jwks_url`, by issuer.
    package let remoteKeySets: [String: RemoteKeySet]

    package init(config: GatewayConfig) {
        var issuers: [String: IssuerConfig] = [:]
        for issuer in config.jwt.issuers { issuers[issuer.issuer] = issuer }
        self.issuers = issuers
        self.leeway = Double(config.jwt.leeway) / 1000
        self.scopeClaims = config.jwt.scopeClaims.map { ClaimPath($0) ?? ClaimPath("scope")! }
        let cache = config.jwt.cacheSize > 0 ? VerifiedTokenCache(capacity: config.jwt.cacheSize) : nil
        self.cache = cache
        var remote: [String: RemoteKeySet] = [:]
        for issuer in config.jwt.issuers {
            if let url = issuer.jwksURL {
                remote[issuer.issuer] = RemoteKeySet(
                    issuer: issuer.issuer, url: url, refresh: issuer.jwksRefresh, onChange: { cache?.removeAll() })
            } else if issuer.discovery {
                remote[issuer.issuer] = RemoteKeySet(
                    issuer: issuer.issuer, url: issuer.discoveryURL, refresh: issuer.jwksRefresh, discovery: true,
                    onChange: { cache?.removeAll() })
            }
        }
        self.remoteKeySets = remote
        self.localIssuer = config.tokenEndpoint?.issuer
        self.activeUsers = Set(config.users.filter { !$0.disabled }.map(\.username))
        self.disabledUsers = Set(config.users.filter(\.disabled).map(\.username))
        self.checksLocalUsers = !config.users.isEmpty
    }

    package var hasIssuers: Bool { !self.issuers.isEmpty }

    /// Verifies `token` at `now` (seconds since 1970). The disabled-user check runs on every
    /// call, cached or not, so disabling a user takes effect at once. Nothing is cached here.
    package func verify(_ token: Substring, now: Double) -> Result<VerifiedToken, TokenRejection> {
        var remember: (key: VerifiedTokenCache.Key, token: VerifiedToken)?
        return self.verify(token, self.lookup(token, now: now), now: now, remember: &remember)
    }

    /// What the cache knows of a token: its key (`nil` without a cache, or for a token too
    /// large to verify) and the verified token it holds, if any.
    package struct Lookup {
        let key: VerifiedTokenCache.Key?
        package let cached: VerifiedToken?
    }

    /// Looks `token` up in the cache, hashing it once: ``verify(_:_:now:remember:)`` takes the
    /// result, so a caller can ask first whether the token was verified before.
    package func lookup(_ token: Substring, now: Double) -> Lookup {
        guard let cache = self.cache, token.utf8.count <= Self.maximumTokenBytes else { return Lookup(key: nil, cached: nil) }
        let key = VerifiedTokenCache.Key(token: token)
        return Lookup(key: key, cached: cache.lookup(key, now: now, leeway: self.leeway))
    }

    /// ``verify(_:now:)`` with the cache already asked (``lookup(_:now:)``); a token verified
    /// now is left in `remember` for the caller to cache.
    package func verify(
        _ token: Substring, _ lookup: Lookup, now: Double, remember: inout (key: VerifiedTokenCache.Key, token: VerifiedToken)?
    ) -> Result<VerifiedToken, TokenRejection> {
        if let cached = lookup.cached { return self.checkLocalUser(cached) }
        guard token.utf8.count <= Self.maximumTokenBytes else { return .failure(.tooLarge) }
        // A header value is a native string: its bytes are copied in one go, not one by one.
        let bytes = token.utf8.withContiguousStorageIfAvailable { Array($0) } ?? Array(token.utf8)
        let result = self.verifyUncached(bytes, now: now)
        if case .success(let verified) = result, let key = lookup.key {
            remember = (key, verified)
        }
        return result.flatMap(self.checkLocalUser)
    }

    private func checkLocalUser(_ token: VerifiedToken) -> Result<VerifiedToken, TokenRejection> {
        if self.checksLocalUsers, token.issuer == self.localIssuer, !self.activeUsers.contains(token.subject) {
            return .failure(self.disabledUsers.contains(token.subject) ? .inactiveUser : .unknownUser)
        }
        return .success(token)
    }

    /// The checks, in a fixed order; the first failure wins.
    func verifyUncached(_ token: [UInt8], now: Double) -> Result<VerifiedToken, TokenRejection> {
        let jws: CompactJWS
        do {
            jws = try CompactJWS(token)
        } catch {
            return .failure(.malformed("\(error)"))
        }
        // 1. The header: `alg` a string, no `crit`, `kid` a string when present.
        guard let algName = jws.header["alg"]?.string else { return .failure(.malformed("no alg")) }
        if jws.header["crit"] != nil { return .failure(.criticalHeader) }
        var kid: String?
        if let value = jws.header["kid"] {
            guard let text = value.string else { return .failure(.malformed("kid is not a string")) }
            kid = text
        }
        // 2. The unverified `iss` only chooses the issuer's pinned algorithms and keys.
        guard let issuerName = jws.payload["iss"]?.string, let issuer = self.issuers[issuerName] else {
            return .failure(.unknownIssuer)
        }
        // 3. The algorithm must be pinned for this issuer: `none` and anything else never are.
        guard let algorithm = JWSAlgorithm(rawValue: algName), issuer.algorithms.contains(algorithm) else {
            return .failure(.algorithmNotAllowed(algName))
        }
        // 4. Keys by kid, or every key that fits the algorithm; 5. the signature, with each of
        // them in turn until one verifies.
        var named = false
        var fitting = false
        func verifies(_ candidate: IssuerKey) -> Bool {
            guard kid == nil || candidate.kid == kid else { return false }
            named = true
            guard candidate.algorithm == nil || candidate.algorithm == algorithm, algorithm.fits(candidate.key) else {
                return false
            }
            fitting = true
            return jws.verify(algorithm: algorithm, key: candidate.key)
        }
        guard let key = issuer.keys.first(where: verifies) ?? self.remoteKeySets[issuerName]?.keys.first(where: verifies)
        else {
            if let kid, !named { return .failure(.unknownKeyID(kid: kid, issuer: issuerName)) }
            return .failure(fitting ? .badSignature : .noKeyFits)
        }
        // 6. The claims, trusted only now.
        return self.checkClaims(
            jws.payload, issuerName: issuerName, issuer: issuer, verifiedBy: key.kid ?? key.source, algorithm: algorithm.rawValue,
            now: now)
    }

    /// The claim checks of a token whose signature verified (or, for the dry run's `--claims`,
    /// that is taken to have): times, audience, subject, scopes and roles.
    func checkClaims(
        _ claims: JSONValue, issuerName: String, issuer: IssuerConfig, verifiedBy: String, algorithm: String, now: Double
    ) -> Result<VerifiedToken, TokenRejection> {
        guard let exp = claims["exp"] else { return .failure(.missingExpiry) }
        guard let expiry = exp.number else { return .failure(.malformed("exp is not a number")) }
        if now > expiry + self.leeway { return .failure(.expired) }
        if let nbf = claims["nbf"] {
            guard let notBefore = nbf.number else { return .failure(.malformed("nbf is not a number")) }
            if now + self.leeway < notBefore { return .failure(.notYetValid) }
        }
        if let iat = claims["iat"] {
            guard let issuedAt = iat.number else { return .failure(.malformed("iat is not a number")) }
            if now + self.leeway < issuedAt { return .failure(.issuedInFuture) }
        }
        if !issuer.audiences.isEmpty {
            let audiences: [String]
            switch claims["aud"] {
            case .string(let single)?: audiences = [single]
            case .array(let items)?:
                // RFC 7519 §4.1.3: an array of StringOrURI values.
                audiences = items.compactMap(\.string)
                guard audiences.count == items.count else { return .failure(.malformed("aud is not a string or an array of strings")) }
            case nil: audiences = []
            case _?: return .failure(.malformed("aud is not a string or an array of strings"))
            }
            guard audiences.contains(where: issuer.audiences.contains) else { return .failure(.wrongAudience) }
        }
        guard let subject = claims["sub"]?.string, !subject.isEmpty else { return .failure(.missingSubject) }
        guard Self.subjectFitsAHeader(subject) else { return .failure(.malformed("sub cannot be carried in a header")) }
        // The first scope claim present wins; every roles claim present adds its roles.
        var scopes: [String] = []
        for path in issuer.scopeClaims ?? self.scopeClaims {
            guard let value = path.lookup(claims) else { continue }
            guard let list = ClaimReading.stringList(value), list.allSatisfy(Self.isScopeToken) else {
                return .failure(.badScopeClaim(path.description))
            }
            scopes = list
            break
        }
        var roles: [String] = []
        for path in issuer.rolesClaims {
            guard let value = path.lookup(claims) else { continue }
            guard let list = ClaimReading.stringList(value), list.allSatisfy(Self.isScopeToken) else {
                return .failure(.badRolesClaim(path.description))
            }
            for role in list where !roles.contains(role) { roles.append(role) }
        }
        var token = VerifiedToken(
            issuer: issuerName, subject: subject, scopes: scopes, verifiedBy: verifiedBy, expiresAt: expiry, algorithm: algorithm)
        token.roles = roles.sorted()
        token.claims = claims
        return .success(token)
    }

    /// Decides as if a token with `claims` from `issuer` had been presented and had verified
    /// (`check --claims`): no key is needed. `iss` is set, and a missing `exp`, `iat`, or `aud`
    /// (when the issuer checks one) is filled with a valid value.
    package func assume(_ claims: JSONValue, issuer issuerName: String, now: Double) -> Result<VerifiedToken, TokenRejection> {
        guard let issuer = self.issuers[issuerName] else { return .failure(.unknownIssuer) }
        guard case .object(var members) = claims else { return .failure(.malformed("the claims are not a JSON object")) }
        members["iss"] = .string(issuerName)
        if members["exp"] == nil { members["exp"] = .number((now + 3600).rounded(.down)) }
        if members["iat"] == nil { members["iat"] = .number(now.rounded(.down)) }
        if members["aud"] == nil, let audience = issuer.audiences.first { members["aud"] = .string(audience) }
        return self.checkClaims(
            .object(members), issuerName: issuerName, issuer: issuer, verifiedBy: "--claims (no signature)", algorithm: "none",
            now: now
        ).flatMap(self.checkLocalUser)
    }

    /// The configured issuers' names.
    package var issuerNames: [String] { self.issuers.keys.sorted() }

    /// Whether a subject can travel upstream in a header: at most 512 bytes of visible ASCII,
    /// UTF-8 and spaces, without leading or trailing space (the upstream would read the value
    /// trimmed, so " admin" would arrive as "admin").
    package static func subjectFitsAHeader(_ subject: String) -> Bool {
        !subject.isEmpty && subject.utf8.count <= 512 && !subject.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
            && subject.utf8.first != 0x20 && subject.utf8.last != 0x20 && !Self.hasWideControl(subject)
    }

    /// RFC 6749 §3.3 scope-token: `%x21 / %x23-5B / %x5D-7E`, so that scopes are safe in a header.
    package static func isScopeToken(_ scope: some StringProtocol) -> Bool {
        !scope.isEmpty && scope.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }

    /// Whether `text` holds a C1 control (U+0080-U+009F, NEL among them) or a line or
    /// paragraph separator (U+2028, U+2029): characters that end a line for some readers of a
    /// header or a log.
    static func hasWideControl(_ text: String) -> Bool {
        var previous: (UInt8, UInt8) = (0, 0)
        for byte in text.utf8 {
            if previous.1 == 0xC2 && (0x80...0x9F).contains(byte) { return true }
            if previous == (0xE2, 0x80) && (byte == 0xA8 || byte == 0xA9) { return true }
            previous = (previous.1, byte)
        }
        return false
    }

    /// The words of a space-delimited claim (RFC 6749 §3.3), empty ones dropped.
    package static func spaceDelimited(_ text: String) -> [String] {
        var words: [String] = []
        var rest = Substring(text)
        while let start = rest.utf8.firstIndex(where: { $0 != 0x20 }) {
            let end = rest.utf8[start...].firstIndex(of: 0x20) ?? rest.endIndex
            words.append(String(rest[start..<end]))
            rest = rest[end...]
        }
        return words
    }
}
