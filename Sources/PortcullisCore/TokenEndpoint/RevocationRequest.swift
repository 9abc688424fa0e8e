/// An RFC 7009 revocation request: `token`, and an optional `token_type_hint`.
///
/// Only refresh tokens are stored, so only they can be revoked; the hint is read and not
/// needed (§2.1: a server that cannot find the token under the hint looks further anyway).
package struct RevocationRequest: Sendable, Equatable {
    package var token: String
    package var tokenTypeHint: String?

    package static func read(_ fields: FormFields) throws(OAuthError) -> RevocationRequest {
        guard let token = fields["token"], !token.isEmpty else { throw .invalidRequest("Missing token") }
        return RevocationRequest(token: token, tokenTypeHint: fields["token_type_hint"])
    }
}
