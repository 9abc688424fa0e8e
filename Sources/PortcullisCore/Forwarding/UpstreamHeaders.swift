/// The header list of a forwarded request: the client's fields less what must not pass, then
/// the fields the gateway sets. Computed by the decision, so `serve` sends, `check` prints and
/// `test` compares one and the same list.
struct UpstreamHeaders {
    let server: ServerConfig
    /// Lower-case names of the identity headers, removed from every client request.
    let identityHeaderNames: Set<String>
    /// Lower-case names of the request headers that may carry API keys.
    let credentialHeaderNames: Set<String>

    /// What passes of the client's own fields, given the route's plan.
    struct Rules {
        var forwardAuthorization: Bool
        var stripAPIKeyHeaders: Bool
        /// `Host` the upstream gets: the client's (`preserve_host`) or the upstream's own.
        var host: String?
    }

    func build(_ request: RequestFacts, clientHost: String?, identity: Identity?, rules: Rules) -> [(name: String, value: String)] {
        var lines: [(name: String, value: String)] = []
        lines.reserveCapacity(request.fields.count + 8)
        // Host first, where HTTP/1.1 clients put it (RFC 9112 §3.2) and libcurl sends it.
        if let host = rules.host { lines.append(("Host", host)) }
        let listed = HopByHopHeaders.listedInConnection(request.fields)
        let stripped = self.identityHeaderNames
        let trustedPeer = self.isTrustedProxy(request.peer)
        var forwardedFor: String?
        var forwardedProto: String?
        var forwardedHost: String?
        for (name, value) in request.fields {
            // Names are compared without lower-case copies where the list is fixed; only the
            // Connection-listed names and API key headers need one.
            if HopByHopHeaders.isAlways(name) || stripped.contains(where: { name.equalsIgnoringASCIICase($0) }) { continue }
            if name.utf8.contains(UInt8(ascii: "_")),
                HopByHopHeaders.posesAs(name, stripped) || HopByHopHeaders.posesAs(name, HopByHopHeaders.gatewaySet)
            {
                continue
            }
            var lower: String?
            if !listed.isEmpty {
                let lowered = name.lowercased()
                if listed.contains(lowered) { continue }
                lower = lowered
            }
            switch ForwardingRole(name) {
            case .forwardedFor:
                let hops = value.trimmingSpaces()
                if trustedPeer && !hops.isEmpty { forwardedFor = forwardedFor.map { $0 + ", " + hops } ?? hops }
                continue
            case .addressClaim:
                if !trustedPeer { continue }
            case .forwardedProto:
                if trustedPeer { forwardedProto = value.trimmingSpaces() }
                continue
            case .forwardedHost:
                if trustedPeer { forwardedHost = value.trimmingSpaces() }
                continue
            case .authorization:
                if !rules.forwardAuthorization { continue }
            case .framing, .proxyCredential:
                // The gateway frames every upstream request itself, and answers 100-continue
                // itself. A credential for a proxy is this hop's, never the upstream's.
                continue
            case .other:
                if rules.stripAPIKeyHeaders {
                    let lowered = lower ?? name.lowercased()
                    if lowered != "cookie" && self.credentialHeaderNames.contains(lowered) { continue }  // the API key itself
                }
            }
            lines.append((name, value.trimmingSpaces()))
        }
        lines.append(("X-Forwarded-For", forwardedFor.map { $0 + ", " + request.peer } ?? request.peer))
        lines.append(("X-Forwarded-Proto", forwardedProto ?? (request.tls ? "https" : "http")))
        if let host = forwardedHost ?? clientHost { lines.append(("X-Forwarded-Host", host)) }
        lines.append(("X-Request-Id", request.requestID))
        if identity != nil { self.server.appendIdentityFields(identity, includingEmpty: false, to: &lines) }
        return lines
    }

    func isTrustedProxy(_ peer: String) -> Bool {
        !self.server.trustedProxies.isEmpty && IPAddressBytes.isIn(self.server.trustedProxies, peer)
    }
}

extension ServerConfig {
    /// The identity headers for `identity`: subject, scopes, method and roles, then the claim
    /// headers in the order configured. Forwarded requests carry those of a verified credential
    /// and the claims it has (`includingEmpty: false`); the decision service always answers
    /// every one, empty when the request is anonymous or the claim absent
    /// (`includingEmpty: true`), so that an edge proxy that copies them overwrites whatever a
    /// client sent under those names.
    package func appendIdentityFields(
        _ identity: Identity?, includingEmpty: Bool, to fields: inout [(name: String, value: String)]
    ) {
        guard identity != nil || includingEmpty else { return }
        let names = self.identityHeaders
        fields.append((names.subject, identity?.subject ?? ""))
        fields.append((names.scopes, identity?.scopes.joined(separator: " ") ?? ""))
        fields.append((names.method, identity?.method.rawValue ?? ""))
        fields.append((names.roles, identity?.roles.joined(separator: " ") ?? ""))
        let claims = identity?.claimHeaders ?? []
        if includingEmpty {
            for header in self.claimHeaders {
                fields.append((header.name, claims.first { $0.name == header.name }?.value ?? ""))
            }
        } else {
            for claim in claims { fields.append((claim.name, claim.value)) }
        }
    }
}

/// What a client request header is to the forwarding step.
enum ForwardingRole {
    case forwardedFor, forwardedProto, forwardedHost
    /// Fields that say who the client is or how it reached the edge (`Forwarded`, `X-Real-IP`,
    /// every other `X-Forwarded-*`, `True-Client-IP`, `X-Client-IP`, `Front-End-Https`,
    /// `X-Url-Scheme`): frameworks take scheme, port, prefix and address from them, so they are
    /// kept from trusted proxies only.
    case addressClaim
    case authorization
    /// `Proxy-Authorization`: a credential for this hop, never passed on.
    case proxyCredential
    /// `Host`, `Content-Length`, `Expect`, `X-Request-Id`: set by the gateway itself.
    case framing
    case other

    init(_ name: String) {
        if name.utf8.contains(UInt8(ascii: "_")) {
            // Read as an upstream that takes `_` for `-` would read it (CGI, and frameworks on it).
            switch ForwardingRole(String(name.map { $0 == "_" ? "-" : $0 })) {
            case .forwardedFor, .forwardedProto, .forwardedHost, .addressClaim: self = .addressClaim
            case .proxyCredential: self = .proxyCredential
            case .authorization, .framing, .other: self = .other
            }
            return
        }
        switch name.utf8.count {
        case 4 where name.equalsIgnoringASCIICase("host"): self = .framing
        case 6 where name.equalsIgnoringASCIICase("expect"): self = .framing
        case 9 where name.equalsIgnoringASCIICase("forwarded") || name.equalsIgnoringASCIICase("x-real-ip"): self = .addressClaim
        case 11 where name.equalsIgnoringASCIICase("x-client-ip"): self = .addressClaim
        case 12 where name.equalsIgnoringASCIICase("x-request-id"): self = .framing
        case 12 where name.equalsIgnoringASCIICase("x-url-scheme"): self = .addressClaim
        case 13 where name.equalsIgnoringASCIICase("authorization"): self = .authorization
        case 14 where name.equalsIgnoringASCIICase("content-length"): self = .framing
        case 14 where name.equalsIgnoringASCIICase("true-client-ip"): self = .addressClaim
        case 15 where name.equalsIgnoringASCIICase("x-forwarded-for"): self = .forwardedFor
        case 15 where name.equalsIgnoringASCIICase("front-end-https"): self = .addressClaim
        case 16 where name.equalsIgnoringASCIICase("x-forwarded-host"): self = .forwardedHost
        case 17 where name.equalsIgnoringASCIICase("x-forwarded-proto"): self = .forwardedProto
        case 19 where name.equalsIgnoringASCIICase("proxy-authorization"): self = .proxyCredential
        case 12... where Self.isForwardedFamily(name): self = .addressClaim
        default: self = .other
        }
    }

    /// `X-Forwarded-` followed by anything (`-Port`, `-Prefix`, `-Ssl`, `-Scheme`, `-Server`).
    private static func isForwardedFamily(_ name: String) -> Bool {
        let prefix = "x-forwarded-".utf8
        return name.utf8.prefix(prefix.count).elementsEqual(prefix) { ($0 | 0x20) == $1 }
    }
}
