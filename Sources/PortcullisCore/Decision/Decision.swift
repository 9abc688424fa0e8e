package import PortcullisCrypto

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

extension Decision {
    /// The key set whose fetch may change this decision: the token named a `kid` its issuer's
    /// `jwks_url` set lacks (in shadow mode too, where the refusal rides on a forward).
    package var keySetToRefresh: RemoteKeySet? {
        switch self {
        case .refuse(let refusal): return refusal.keySetToRefresh
        case .forward(let plan): return plan.shadowed?.keySetToRefresh
        case .verify, .serve: return nil
        }
    }
}

/// What the gateway answers itself.
package enum GatewayAnswer: Sendable {
    /// `POST` to `token_endpoint.path`: the token endpoint reads the form and answers.
    case tokenEndpoint
    /// `POST` to `{token_endpoint.path}/revoke`: RFC 7009 revocation of a refresh token.
    case tokenRevocation
    /// A document the gateway publishes (the JWKS, the RFC 8414 metadata): 200 with this body.
    case document(body: [UInt8], headers: [(name: String, value: String)])
    /// A CORS preflight the route allows: 204 with these headers, no body.
    case preflight(route: String, headers: [(name: String, value: String)])
}

/// Who a request was authenticated as.
package struct Identity: Sendable, Hashable {
    package var subject: String
    package var scopes: [String]
    package var method: AuthScheme
    /// Sorted; only tokens carry roles.
    package var roles: [String] = []
    /// The `claim_headers` whose claims the token has, rendered for the header.
    package var claimHeaders: [ClaimHeaderValue] = []
}

/// A forwarded claim: the header's name and the claim's text.
package struct ClaimHeaderValue: Sendable, Hashable {
    package var name: String
    package var value: String
}

/// An allowed request, fully resolved: the complete request head the upstream receives.
/// `serve` sends exactly this, `check` prints it and `test` compares against it.
package struct ForwardPlan: Sendable {
    /// The matched route, by reference: the plan is handed from function to function, and
    /// the route's name and upstream are read from it, not copied into every plan.
    package let route: Policy.CompiledRoute
    package var routeName: String { self.route.config.name }
    /// `nil` on a route only the decision service answers (which is never forwarded).
    package var upstream: UpstreamConfig? { self.route.upstream }
    /// The method the upstream receives: always the one that was authorized.
    package var method: String
    /// The path and query sent upstream: the normalized path, after `strip_prefix`, under the
    /// upstream URL's own base path, followed by the query exactly as received.
    package var upstreamTarget: String
    /// The full upstream URL (`http://127.0.0.1:9001/items?x=1`); empty without an upstream.
    package var upstreamURL: String
    /// `nil` for anonymous requests (`auth: none`, or `optional` without credentials).
    package var identity: Identity?
    /// Every header field the upstream receives besides the body's framing (which the upstream
    /// client sets from the body), in order: the client's fields that may pass, then `Host`,
    /// `X-Forwarded-*`, `X-Request-Id` and the identity headers. Empty on the decision service,
    /// which forwards nothing.
    package var headers: [(name: String, value: String)]
    /// Shadow mode (`dry_run`, or the route's `mode: dry-run`): the refusal enforcement would
    /// have sent, logged as `would_deny`; the request is forwarded anyway.
    package var shadowed: Refusal?
    /// Fields the gateway adds to the upstream's response (CORS: `Access-Control-Allow-Origin`
    /// and `Vary: Origin` for a listed origin).
    package var responseHeaders: [(name: String, value: String)] = []
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
    /// The dry run's `--claims`: decide as if a token of `issuer` with these claims had been
    /// presented and had verified.
    package var assumedToken: (issuer: String, claims: JSONValue)?
    /// Every header field as received, in order: the upstream request's fields come from these.
    package var fields: [(name: String, value: String)]
    /// The connection's peer address, as text (empty when there is none, as on a Unix socket).
    package var peer: String
    /// Whether the request came over TLS.
    package var tls: Bool
    /// The request's id: the client's `X-Request-Id` when sane (``RequestID/choose(_:)``).
    package var requestID: String
    /// Which listener asks: the public one (which proxies) or the decision service.
    package var listener: Listener = .proxy
    /// What `serve` refuses before any decision (its parser, its Host count). The dry-run tools
    /// build requests by hand, so ``dryRun(method:target:headers:authorization:policy:)`` puts
    /// the same refusal here and the decision returns it.
    package var refusedBeforeDecision: (refusal: Refusal, why: String)?

    package init(
        method: String, rawTarget: String, host: String?, authorization: [String] = [],
        credentialHeaders: [(name: String, value: String)] = [], fields: [(name: String, value: String)] = [],
        peer: String = "", tls: Bool = false, requestID: String = ""
    ) {
        // Leading and trailing white space is not part of a field value (RFC 9110 §5.5); the
        // parser leaves trailing white space in, so serve and check both drop it here.
        self.fields = fields
        self.peer = peer
        self.tls = tls
        self.requestID = requestID
        self.method = method
        self.rawTarget = rawTarget
        self.host = host.map { $0.trimmingSpaces() }
        // In place, without a second array (a value with nothing to trim is returned as it is).
        self.authorization = authorization
        for index in self.authorization.indices { self.authorization[index] = self.authorization[index].trimmingSpaces() }
        self.credentialHeaders = credentialHeaders
        for index in self.credentialHeaders.indices {
            self.credentialHeaders[index].value = self.credentialHeaders[index].value.trimmingSpaces()
        }
    }
}

/// The listener a request arrives on: the decision differs only where the contract says so (a
/// route without upstream, the token endpoint's paths).
package enum Listener: String, Sendable {
    /// The public listener, which forwards allowed requests.
    case proxy = "public"
    /// The decision service (contract §11), which only answers.
    case decisions
}

extension RequestFacts {
    /// The facts of a request that `check` or `test` describes by its headers, refused as
    /// `serve` would refuse it before deciding: a field with a control character is a framing
    /// error of the parser, and more than one Host is refused (RFC 9112 §3.2).
    /// - Parameters:
    ///   - peer: the address the request is taken to come from (what `serve` sees as its peer).
    package static func dryRun(
        method: String, target: String, headers: [(name: String, value: String)], authorization extra: [String] = [],
        peer: String = "127.0.0.1", tls: Bool = false, policy: Policy
    ) -> RequestFacts {
        let hosts = headers.filter { $0.name.lowercased() == "host" }.map(\.value)
        let fields = headers + extra.map { ("Authorization", $0) }
        var facts = RequestFacts(
            method: method, rawTarget: target, host: hosts.last,
            authorization: headers.filter { $0.name.lowercased() == "authorization" }.map(\.value) + extra,
            credentialHeaders: headers.filter { policy.credentialHeaderNames.contains($0.name.lowercased()) },
            fields: fields, peer: peer, tls: tls,
            requestID: RequestID.choose(headers.first { $0.name.lowercased() == "x-request-id" }?.value))
        let controls = headers.contains { field in
            field.value.utf8.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F } || !HeaderName.isToken(field.name)
        }
        if controls {
            facts.refusedBeforeDecision = (
                Refusal(status: 400, detail: "Bad Request", reason: .badFraming), "a header field holds a control character"
            )
        } else if method == "HEAD",
            headers.contains(where: { field in
                let name = field.name.lowercased()
                return name == "transfer-encoding" || (name == "content-length" && field.value.trimmingSpaces() != "0")
            })
        {
            facts.refusedBeforeDecision = (
                Refusal(status: 400, detail: "A HEAD request has no body", reason: .badFraming), "a HEAD request with a body"
            )
        } else if hosts.reduce(0, { $0 + Self.listElementCount($1) }) > 1 {
            facts.refusedBeforeDecision = (
                Refusal(status: 400, detail: "More than one Host header", reason: .badHost), "more than one Host header"
            )
        }
        return facts
    }

    /// The elements of a comma-separated field value: `a, b` is two Hosts in one field.
    package static func listElementCount(_ value: String) -> Int {
        var count = 0
        var inElement = false
        for byte in value.utf8 {
            if byte == UInt8(ascii: ",") {
                inElement = false
            } else if !inElement {
                inElement = true
                count += 1
            }
        }
        return count
    }
}
