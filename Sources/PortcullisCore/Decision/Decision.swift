/// What the gateway does with one request. The server executes it; the dry-run tools print it.
package enum Decision: Sendable {
    case forward(ForwardPlan)
    case refuse(Refusal)
    /// A password or API key must pass an Argon2 check first: run it off the event loops, put
    /// the verdict in ``RequestFacts/verdict``, and decide again.
    case verify(CredentialCheck)
    /// A path the gateway answers itself, before any route: see ``Policy/gatewayDecision(method:path:host:)``.
    case serve(GatewayAnswer)
}

/// What the gateway answers itself.
package enum GatewayAnswer: Sendable {
    /// `POST` to `token_endpoint.path`: the token endpoint reads the form and answers.
    case tokenEndpoint
    /// A document the gateway publishes (the JWKS, the RFC 8414 metadata): 200 with this body.
    case document(body: [UInt8], headers: [(name: String, value: String)])
}

/// Who a request was authenticated as.
package struct Identity: Sendable, Hashable {
    package var subject: String
    package var scopes: [String]
    package var method: AuthScheme
}

/// An allowed request, fully resolved: where it goes, with which path and identity.
package struct ForwardPlan: Sendable {
    package var routeIndex: Int
    package var routeName: String
    package var upstream: UpstreamConfig
    /// The path and query sent upstream: the normalized path, after `strip_prefix`, under the
    /// upstream URL's own base path, followed by the query exactly as received.
    package var upstreamTarget: String
    /// The full upstream URL (`http://127.0.0.1:9001/items?x=1`).
    package var upstreamURL: String
    /// `nil` for anonymous requests (`auth: none`, or `optional` without credentials).
    package var identity: Identity?
    /// Whether the client's `Authorization` header is passed on.
    package var forwardAuthorization: Bool
    /// Whether headers that carry API keys are removed (routes that take API keys, unless they
    /// set `forward_authorization: true`), whether the key was right or not.
    package var stripAPIKeyHeaders: Bool
}

/// The facts of a request the decision needs, before normalization.
package struct RequestFacts: Sendable {
    package var method: String
    package var rawTarget: String
    /// The `Host` header value, if any (with port).
    package var host: String?
    /// The `Authorization` header values the client sent.
    package var authorization: [String]
    /// Other headers that may carry credentials (those named by ``Policy/credentialHeaderNames``).
    package var credentialHeaders: [(name: String, value: String)]
    /// The result of the ``CredentialCheck`` a previous decision asked for.
    package var verdict: CredentialVerdict?

    package init(
        method: String, rawTarget: String, host: String?, authorization: [String] = [],
        credentialHeaders: [(name: String, value: String)] = []
    ) {
        // Leading and trailing white space is not part of a field value (RFC 9110 §5.5); the
        // parser leaves trailing white space in, so serve and check both drop it here.
        self.method = method
        self.rawTarget = rawTarget
        self.host = host.map { $0.trimmingSpaces() }
        self.authorization = authorization.map { $0.trimmingSpaces() }
        self.credentialHeaders = credentialHeaders.map { ($0.name, $0.value.trimmingSpaces()) }
    }
}
