/// A token request, read from its form fields (RFC 6749 §4.3, §6).
package enum TokenRequest: Sendable {
    case password(username: String, password: String, scopes: [String]?)
    case refresh(token: String, scopes: [String]?)

    package static func read(_ fields: FormFields, requireGrantType: Bool) throws(OAuthError) -> TokenRequest {
        let scopes = fields["scope"].map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        switch fields["grant_type"] {
        case "password"?:
            return try Self.password(fields, scopes)
        case "refresh_token"?:
            guard let token = fields["refresh_token"], !token.isEmpty else {
                throw .invalidRequest("Missing refresh_token")
            }
            return .refresh(token: token, scopes: scopes)
        case let other?:
            if other.isEmpty { throw .invalidRequest("Missing grant_type") }
            throw .unsupportedGrantType(other)
        case nil:
            // FastAPI's OAuth2PasswordRequestForm takes username and password without grant_type.
            if requireGrantType { throw .invalidRequest("Missing grant_type") }
            guard fields["username"] != nil || fields["password"] != nil else { throw .invalidRequest("Missing grant_type") }
            return try Self.password(fields, scopes)
        }
    }

    private static func password(_ fields: FormFields, _ scopes: [String]?) throws(OAuthError) -> TokenRequest {
        guard let username = fields["username"], !username.isEmpty else { throw .invalidRequest("Missing username") }
        guard let password = fields["password"] else { throw .invalidRequest("Missing password") }
        return .password(username: username, password: password, scopes: scopes)
    }
}

extension TokenEndpointConfig {
    /// The scopes granted for `requested` (or the defaults when nothing was asked for):
    /// requested ⊆ the user's scopes ⊆ the declared scopes, else `invalid_scope`.
    package func grant(_ requested: [String]?, allowed: [String]) throws(OAuthError) -> [String] {
        let declared = Set(self.scopes.map(\.name))
        guard let requested, !requested.isEmpty else {
            return self.defaultScopes.filter { allowed.contains($0) && (declared.isEmpty || declared.contains($0)) }
        }
        var granted: [String] = []
        for scope in requested where !granted.contains(scope) {
            if !declared.isEmpty && !declared.contains(scope) {
                throw .invalidScope("The scope \(scope) is not defined")
            }
            guard allowed.contains(scope) else { throw .invalidScope("The scope \(scope) is not available to this user") }
            granted.append(scope)
        }
        return granted
    }
}
