/// An RFC 6749 §5.2 error answer, with FastAPI's `detail` beside `error` and `error_description`.
package struct OAuthError: Error, Sendable {
    package var status: Int
    /// The RFC 6749 `error` code; its text is the access log's `reason` too, unless
    /// ``logReason`` says more.
    package var error: Reason
    package var description: String
    package var detail: String
    package var headers: [(name: String, value: String)] = []
    /// The access log's `reason` when it says more than `error` does.
    package var logReason: Reason?

    package static func invalidRequest(_ description: String) -> OAuthError {
        OAuthError(status: 400, error: .invalidRequest, description: description, detail: description)
    }

    package static let badCredentials = OAuthError(
        status: 400, error: .invalidGrant, description: "Incorrect username or password", detail: "Incorrect username or password")
    package static let inactiveUser = OAuthError(status: 400, error: .invalidGrant, description: "Inactive user", detail: "Inactive user")

    package static func invalidGrant(_ description: String) -> OAuthError {
        OAuthError(status: 400, error: .invalidGrant, description: description, detail: description)
    }

    package static func invalidScope(_ description: String) -> OAuthError {
        OAuthError(status: 400, error: .invalidScope, description: description, detail: description)
    }

    package static func unsupportedGrantType(_ type: String) -> OAuthError {
        OAuthError(
            status: 400, error: .unsupportedGrantType, description: "The grant type is not supported",
            detail: "Unsupported grant type")
    }

    package static func invalidClient(realm: String, basic: Bool) -> OAuthError {
        OAuthError(
            status: 401, error: .invalidClient, description: "Client authentication failed", detail: "Invalid client",
            headers: basic ? [(Challenge.headerName, Challenge.basic(realm: realm))] : [])
    }

    package static func tooManyAttempts(retryAfter: Int) -> OAuthError {
        OAuthError(
            status: 429, error: .invalidRequest, description: "Too many failed attempts", detail: "Too many failed attempts",
            headers: [("Retry-After", String(retryAfter))], logReason: .throttled)
    }

    package static let busy = OAuthError(
        status: 503, error: .temporarilyUnavailable, description: "Too many logins in progress", detail: "Service Unavailable",
        headers: [("Retry-After", "1")])

    /// `{"detail", "error", "error_description"}`.
    package var body: [UInt8] {
        let description = Self.describable(self.description)
        let detail = self.detail == self.description ? description : Self.describable(self.detail)
        return Array(JSONText.object([("detail", detail), ("error", self.error.rawValue), ("error_description", description)]).utf8)
    }

    /// `text` with only the characters RFC 6749 §5.2 allows in `error_description`
    /// (`%x20-21 / %x23-5B / %x5D-7E`), each other character replaced by `?`, and at most
    /// 200 of them. Descriptions may quote the request (a scope, a parameter name); what the
    /// client sent must not come back as quotes, backslashes, control characters or a flood.
    package static func describable(_ text: String) -> String {
        let allowed = { (c: Unicode.Scalar) in
            c.value == 0x20 || c.value == 0x21 || (0x23...0x5B).contains(c.value) || (0x5D...0x7E).contains(c.value)
        }
        guard text.unicodeScalars.count > 200 || !text.unicodeScalars.allSatisfy(allowed) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars.prefix(200) { result.append(allowed(scalar) ? scalar : "?") }
        if text.unicodeScalars.count > 200 { result.append(contentsOf: "...".unicodeScalars) }
        return String(result)
    }
}
