import PortcullisCore

/// What is kept of a refresh token: never the token, only its SHA-256 digest.
struct RefreshRecord: Sendable {
    var family: String
    var subject: String
    var scopes: [String]
    var clientID: String?
    var expiresAt: Double
}

/// What presenting a refresh token led to.
enum RefreshRedemption: Sendable {
    /// The token was good: it is retired and `replacement` stands in its place.
    case rotated(old: RefreshRecord, replacement: RefreshRecord)
    /// The token had been used before: its whole family is now revoked (RFC 9700 §4.14.2).
    case reused(subject: String)
    /// The token's family was revoked already (by an earlier reuse, or a revocation): refused,
    /// and not counted as another reuse.
    case revoked
    case unknown
    case expired
    case refused(OAuthError)
}

/// The states a stored digest goes through: active until used once (retired) or until its
/// family is revoked. Stored as these integers by the SQLite and PostgreSQL stores.
enum RefreshTokenState: Int {
    case active = 0
    case retired = 1
    case revoked = 2
}

/// Where refresh tokens live (`token_endpoint.store`).
///
/// Each method returns once its change is durable in the store, so no token reaches a client
/// before the store has it. A method that throws has changed nothing the caller relies on: the
/// token endpoint answers 503 and the client may try again.
protocol RefreshTokenStore: Sendable {
    /// Records the first token of a new family, or of a login.
    func issue(digest: [UInt8], _ record: RefreshRecord) async throws

    /// Atomically, also against other processes on the same store: looks the digest up and,
    /// if `decide` accepts the record, retires it and stores the replacement under
    /// `replacementDigest`. Of two redemptions of one token, exactly one can rotate it; the
    /// other finds it retired, which revokes its family.
    func redeem(
        digest: [UInt8], replacementDigest: [UInt8], now: Double,
        decide: @escaping @Sendable (RefreshRecord) -> Result<RefreshRecord, OAuthError>
    ) async throws -> RefreshRedemption

    /// Revokes the whole family of the token with this digest (RFC 7009), when the token was
    /// issued to `clientID` (or to no client, and `clientID` is `nil`).
    /// - Returns: whether a family was revoked; `false` for an unknown token or another client's.
    func revokeFamily(digest: [UInt8], clientID: String?) async throws -> Bool
}
