package import PortcullisCrypto

/// Why a Bearer token was refused. The first failing check wins, as in Envoy's jwt_authn.
package enum TokenRejection: Error, Hashable, Sendable {
    case tooLarge
    case malformed(String)
    case unknownIssuer
    case algorithmNotAllowed(String)
    case criticalHeader
    case unknownKeyID(kid: String, issuer: String)
    case noKeyFits
    case badSignature
    case missingExpiry
    case expired
    case notYetValid
    case issuedInFuture
    case wrongAudience
    case missingSubject
    case badScopeClaim(String)
    /// A `roles_claims` path holds something other than role names.
    case badRolesClaim(String)
    /// The route accepts tokens of other issuers only.
    case issuerNotAccepted
    /// A claim that `claim_headers` forwards cannot travel in a header undamaged.
    case badClaimHeader(String)
    /// A token of the gateway's own issuer for a local user who is disabled.
    case inactiveUser
    /// A token of the gateway's own issuer for a subject that is no local user.
    case unknownUser

    /// For `error_description`: fixed ASCII text that RFC 6750 §3 allows (no `"` or `\`).
    /// Token content is never echoed.
    package var errorDescription: String {
        switch self {
        case .tooLarge: return "The access token is too large"
        case .malformed: return "The access token is malformed"
        case .unknownIssuer: return "The access token issuer is not trusted"
        case .algorithmNotAllowed: return "The access token algorithm is not allowed"
        case .criticalHeader: return "The access token has critical header parameters"
        case .unknownKeyID: return "The access token key id is unknown"
        case .noKeyFits: return "No key can verify the access token"
        case .badSignature: return "The access token signature is invalid"
        case .missingExpiry: return "The access token has no expiry"
        case .expired: return "The access token expired"
        case .notYetValid: return "The access token is not yet valid"
        case .issuedInFuture: return "The access token was issued in the future"
        case .wrongAudience: return "The access token audience is not accepted"
        case .missingSubject: return "The access token has no subject"
        case .badScopeClaim: return "The access token scope claim is malformed"
        case .badRolesClaim: return "The access token roles claim is malformed"
        case .issuerNotAccepted: return "The access token issuer is not accepted here"
        case .badClaimHeader: return "A claim of the access token cannot be forwarded"
        case .inactiveUser: return "Inactive user"
        case .unknownUser: return "Unknown user"
        }
    }

    /// A stable machine-readable reason for logs and traces.
    package var reasonID: Reason {
        switch self {
        case .tooLarge: return .tokenTooLarge
        case .malformed: return .tokenMalformed
        case .unknownIssuer: return .unknownIssuer
        case .algorithmNotAllowed: return .algorithmNotAllowed
        case .criticalHeader: return .criticalHeader
        case .unknownKeyID: return .unknownKid
        case .noKeyFits: return .noKeyFits
        case .badSignature: return .badSignature
        case .missingExpiry: return .missingExp
        case .expired: return .expired
        case .notYetValid: return .notYetValid
        case .issuedInFuture: return .issuedInFuture
        case .wrongAudience: return .wrongAudience
        case .missingSubject: return .missingSub
        case .badScopeClaim: return .badScopeClaim
        case .badRolesClaim: return .badRolesClaim
        case .issuerNotAccepted: return .issuerNotAccepted
        case .badClaimHeader: return .badClaimHeader
        case .inactiveUser: return .inactiveUser
        case .unknownUser: return .unknownUser
        }
    }

    /// The claim or header parameter that failed, for the dry-run trace.
    package var failedField: String? {
        switch self {
        case .expired, .missingExpiry: return "exp"
        case .notYetValid: return "nbf"
        case .issuedInFuture: return "iat"
        case .wrongAudience: return "aud"
        case .unknownIssuer: return "iss"
        case .missingSubject, .inactiveUser, .unknownUser: return "sub"
        case .algorithmNotAllowed: return "alg"
        case .unknownKeyID: return "kid"
        case .criticalHeader: return "crit"
        case .badScopeClaim(let claim), .badRolesClaim(let claim), .badClaimHeader(let claim): return claim
        case .issuerNotAccepted: return "iss"
        default: return nil
        }
    }
}

/// A token that passed every check.
package struct VerifiedToken: Sendable, Hashable {
    package var issuer: String
    package var subject: String
    package var scopes: [String]
    /// The `kid` of the key that verified it, or the key's source when it had no kid.
    package var verifiedBy: String
    package var expiresAt: Double
    package var algorithm: String
    /// Sorted, without repeats: the union of the issuer's `roles_claims` that are present.
    package var roles: [String] = []
    /// The verified payload, for claim conditions and `claim_headers`.
    package var claims: JSONValue = .object([:])
}
