import PortcullisCrypto

/// A complete refusal: status, headers and JSON body, rendered when the policy is built (or,
/// for per-request texts, once per refusal) so the server only writes bytes.
package struct Refusal: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]
    /// A stable, machine-readable reason for logs and traces (`no_route`, `missing_credentials`).
    package var reason: Reason
    /// Set when the token named a `kid` its issuer's `jwks_url` set lacks: a fetch of that set
    /// may change the answer, so the server may fetch once and decide again.
    package var keySetToRefresh: RemoteKeySet?
    /// The route that matched, when one did.
    package var routeName: String?
    /// Who the valid credentials of a refused request belong to (a token lacking a scope): in
    /// shadow mode, the identity the request is forwarded with anyway.
    var shadowIdentity: Identity?
    /// The connection closes after this answer (a refusal that sheds load, or that follows an
    /// internal error).
    package var closesConnection = false

    package init(status: Int, headers: [(name: String, value: String)] = [], detail: String, reason: Reason) {
        self.status = status
        self.headers = headers
        self.body = Array(JSONText.object([("detail", detail)]).utf8)
        self.reason = reason
    }

    /// An answer with a body rendered elsewhere (the token endpoint's JSON).
    package init(status: Int, headers: [(name: String, value: String)], body: [UInt8], reason: Reason) {
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason
    }

    /// The `WWW-Authenticate` values, in order.
    package var challenges: [String] { self.headers.filter { $0.name == Challenge.headerName }.map(\.value) }

    package static let notFound = Refusal(status: 404, detail: "Not Found", reason: .noRoute)
    /// A body over `max_request_body`: refused before any of it goes upstream.
    package static let bodyTooLarge = Refusal(status: 413, detail: "Request Entity Too Large", reason: .bodyTooLarge)
}

/// Minimal JSON rendering for the gateway's own small bodies.
package enum JSONText {
    package static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\(string($0.0)):\(string($0.1))" }.joined(separator: ",") + "}"
    }

    package static func string(_ text: String) -> String { JSONValue.quote(text) }
}
