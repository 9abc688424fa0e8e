import NIOHTTP1
import PortcullisCore

extension RequestFacts {
    /// The facts of a request head `serve` received, for the decision.
    static func received(_ head: HTTPRequestHead, policy: Policy, peer: String, requestID: String) -> RequestFacts {
        var credentialHeaders: [(name: String, value: String)] = []
        if !policy.credentialHeaderNames.isEmpty {
            for (name, value) in head.headers where policy.credentialHeaderNames.contains(name.lowercased()) {
                credentialHeaders.append((name, value))
            }
        }
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(head.headers.count)
        for field in head.headers { fields.append(field) }
        return RequestFacts(
            method: head.method.rawValue, rawTarget: head.uri, host: head.headers.first(name: "host"),
            authorization: head.headers["authorization"], credentialHeaders: credentialHeaders, fields: fields, peer: peer,
            tls: policy.config.server.tls != nil, requestID: requestID)
    }
}

extension ClientAddress {
    /// The client's address for the throttle and the access log: from a trusted proxy, the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
    static func resolve(_ headers: HTTPHeaders, peer: String, _ server: ServerConfig) -> String {
        guard !server.trustedProxies.isEmpty else { return peer }
        return Self.resolve(
            peer: peer, forwardedFor: headers[canonicalForm: "x-forwarded-for"].map(String.init),
            trustedProxies: server.trustedProxies)
    }
}

extension HTTPRequestHead {
    /// The authority of an absolute-form target, else the Host header.
    var authorityOrHost: String? {
        if !self.uri.hasPrefix("/"),
            case .success(let target) = RequestTarget.normalize(self.uri, mergeSlashes: false),
            let authority = target.authority
        {
            return authority
        }
        return self.headers.first(name: "host")?.trimmingSpaces()
    }
}

extension HTTPMethod {
    /// Methods whose requests rarely carry a body: without a length, they are sent without one.
    var usuallyWithoutBody: Bool {
        switch self {
        case .GET, .HEAD, .DELETE, .OPTIONS, .TRACE: return true
        default: return false
        }
    }
}
