/// Every `WWW-Authenticate` value the gateway sends, and the refusals that carry an RFC 6750
/// Bearer error, rendered here and nowhere else (contract §4).
///
/// Realms and scopes come from the configuration, which refuses `"` and `\` in both, and
/// descriptions are fixed texts of RFC 6750 §3's characters, so every value is a valid
/// quoted-string without escaping.
package enum Challenge {
    /// `Bearer realm="R"`, with `scope="a b"` when the route names scopes.
    package static func bearer(realm: String, scope: String) -> String {
        scope.isEmpty ? "Bearer realm=\"\(realm)\"" : "Bearer realm=\"\(realm)\", scope=\"\(scope)\""
    }

    /// `Basic realm="R", charset="UTF-8"` (RFC 7617 §2.1).
    package static func basic(realm: String) -> String { "Basic realm=\"\(realm)\", charset=\"UTF-8\"" }

    /// API keys have no registered scheme; the name tells a client what to send.
    package static let apiKey = "APIKey"

    /// The challenge of `scheme` on a route whose scope attribute is `scope`.
    package static func header(_ scheme: AuthScheme, realm: String, scope: String) -> (name: String, value: String) {
        switch scheme {
        case .bearer: return (Self.headerName, Self.bearer(realm: realm, scope: scope))
        case .basic: return (Self.headerName, Self.basic(realm: realm))
        case .apiKey: return (Self.headerName, Self.apiKey)
        }
    }

    package static let headerName = "WWW-Authenticate"

    /// An RFC 6750 §3.1 error code.
    package enum BearerError: String, Sendable {
        case invalidRequest = "invalid_request"
        case invalidToken = "invalid_token"
        case insufficientScope = "insufficient_scope"

        /// The status RFC 6750 gives the error; insufficient_scope may be configured to 401.
        var status: Int {
            switch self {
            case .invalidRequest: return 400
            case .invalidToken: return 401
            case .insufficientScope: return 403
            }
        }

        /// FastAPI's `detail` for the error.
        var detail: String {
            switch self {
            case .invalidRequest: return "Not authenticated"
            case .invalidToken: return "Could not validate credentials"
            case .insufficientScope: return "Not enough permissions"
            }
        }
    }

    /// `Bearer realm="R", error="…"[, scope="…"], error_description="…"`.
    package static func bearerError(_ error: BearerError, realm: String, description: String, scope: String? = nil) -> String {
        var value = "Bearer realm=\"\(realm)\", error=\"\(error.rawValue)\""
        if let scope { value += ", scope=\"\(scope)\"" }
        return value + ", error_description=\"\(description)\""
    }

    /// A refusal for a Bearer error: the challenge (then the challenges of the route's other
    /// schemes), and a JSON body that repeats `error` and `error_description` beside `detail`
    /// (contract §9).
    package static func refusal(
        _ error: BearerError, realm: String, description: String, scope: String? = nil, status: Int? = nil,
        otherChallenges: [(name: String, value: String)] = [], reason: Reason
    ) -> Refusal {
        Refusal(
            status: status ?? error.status,
            headers: [(Self.headerName, Self.bearerError(error, realm: realm, description: description, scope: scope))]
                + otherChallenges,
            body: Array(
                JSONText.object([("detail", error.detail), ("error", error.rawValue), ("error_description", description)]).utf8),
            reason: reason)
    }
}
