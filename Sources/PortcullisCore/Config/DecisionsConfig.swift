/// The decision service (`decisions:`, contract §11): a listener of its own that answers the
/// authorization subrequests of an edge proxy (nginx `auth_request`, Traefik `forwardAuth`,
/// Envoy `ext_authz`) with the decision the gateway would make if it proxied the request.
package struct DecisionsConfig: Sendable {
    /// Where the original request is described: set once for the listener, never guessed per
    /// request, since edge proxies pass the client's own headers through to the subrequest.
    package enum RequestFrom: String, Sendable, CaseIterable {
        /// nginx `auth_request`: `X-Original-Method`, `X-Original-URI`, `X-Original-Host`.
        case original
        /// Traefik `forwardAuth`: `X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto`.
        case forwarded
        /// Envoy `ext_authz` (HTTP service): the check request's own method, `Host` and target,
        /// less ``DecisionsConfig/pathPrefix``.
        case target
    }

    /// `nil` when the service is disabled (`listen: ""` or absent).
    package var listen: ListenAddress?
    package var requestFrom: RequestFrom
    /// The peers that may ask; default loopback only.
    package var trustedProxies: [CIDR]
    /// `request_from: target` only: removed from the start of the check request's path.
    package var pathPrefix: String
    /// The `decisions:` key, for messages.
    package var location: SourceLocation

    package init(
        listen: ListenAddress?, requestFrom: RequestFrom, trustedProxies: [CIDR] = Self.loopback, pathPrefix: String = "",
        location: SourceLocation
    ) {
        self.listen = listen
        self.requestFrom = requestFrom
        self.trustedProxies = trustedProxies
        self.pathPrefix = pathPrefix
        self.location = location
    }

    /// The default `trusted_proxies`: this host's loopback addresses.
    package static let loopback: [CIDR] = [CIDR("127.0.0.0/8")!, CIDR("::1/128")!]

    /// Whether `peer` (an IP address as text) may ask for decisions.
    package func trusts(_ peer: String) -> Bool {
        IPAddressBytes.isIn(self.trustedProxies, peer)
    }
}
