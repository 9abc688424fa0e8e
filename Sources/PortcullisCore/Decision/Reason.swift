/// Why a request ended as it did: the `reason` of the access log, of the metrics' `reason`
/// label, of `check` and `test`. A closed set, so every reason a request can end with is
/// listed here once (docs/metrics.md lists the same; a test keeps the two in step).
package enum Reason: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    // Routing and framing
    case noRoute = "no_route"
    case methodNotAllowed = "method_not_allowed"
    case unsupportedMethod = "unsupported_method"
    case badTarget = "bad_target"
    case badHost = "bad_host"
    case badFraming = "bad_framing"
    case headersTooLarge = "headers_too_large"
    case bodyTooLarge = "body_too_large"
    case unsupportedTransferCoding = "unsupported_transfer_coding"
    case incompleteBody = "incomplete_body"
    case clientBodyTimeout = "client_body_timeout"
    // Credentials
    case missingCredentials = "missing_credentials"
    case insufficientScope = "insufficient_scope"
    case insufficientPermissions = "insufficient_permissions"
    case malformedBasic = "malformed_basic"
    case badPassword = "bad_password"
    case badApiKey = "bad_api_key"
    case inactiveUser = "inactive_user"
    case throttled
    case hashQueueFull = "hash_queue_full"
    case credentialLoop = "credential_loop"
    case corsPreflight = "cors_preflight"
    case corsRefused = "cors_refused"
    // Bearer tokens
    case tokenTooLarge = "token_too_large"
    case tokenMalformed = "token_malformed"
    case unknownIssuer = "unknown_issuer"
    case algorithmNotAllowed = "algorithm_not_allowed"
    case criticalHeader = "critical_header"
    case unknownKid = "unknown_kid"
    case noKeyFits = "no_key_fits"
    case badSignature = "bad_signature"
    case missingExp = "missing_exp"
    case expired
    case notYetValid = "not_yet_valid"
    case issuedInFuture = "issued_in_future"
    case wrongAudience = "wrong_audience"
    case missingSub = "missing_sub"
    case badScopeClaim = "bad_scope_claim"
    case badRolesClaim = "bad_roles_claim"
    case issuerNotAccepted = "issuer_not_accepted"
    case badClaimHeader = "bad_claim_header"
    case unknownUser = "unknown_user"
    // The token endpoint and its documents
    case issued
    case revoked
    case revokeUnknownToken = "revoke_unknown_token"
    case invalidRequest = "invalid_request"
    case invalidClient = "invalid_client"
    case invalidGrant = "invalid_grant"
    case invalidScope = "invalid_scope"
    case unsupportedGrantType = "unsupported_grant_type"
    case temporarilyUnavailable = "temporarily_unavailable"
    case `error`
    case discovery
    case tokenEndpointUnavailable = "token_endpoint_unavailable"
    case storeUnavailable = "store_unavailable"
    // The decision service
    case badDecisionRequest = "bad_decision_request"
    case credentialCheckFailed = "credential_check_failed"
    case decisionServiceOff = "decision_service_off"
    case decisionServiceOnly = "decision_service_only"
    case notServedHere = "not_served_here"
    case untrustedPeer = "untrusted_peer"
    // The upstream exchange and the connection
    case upstreamError = "upstream_error"
    case upstreamTimeout = "upstream_timeout"
    case upstreamFailedMidBody = "upstream_failed_mid_body"
    case clientClosed = "client_closed"
    case cancelled

    /// As the access log writes it.
    package var description: String { self.rawValue }
}

/// What the gateway did with a request, as the access log and the metrics' `decision` label
/// say it.
package enum DecisionLabel: String, Hashable, Sendable, CustomStringConvertible {
    case allow
    case deny
    /// Shadow mode: the policy refused, and the request went through anyway.
    case wouldDeny = "would_deny"

    package var description: String { self.rawValue }
}
