extension RequestFacts {
    /// The facts of the original request a decision request describes (contract §11), read as
    /// `decisions.request_from` says and in no other way: the headers of the other modes are
    /// ordinary fields, since an edge proxy passes the client's own headers through to the
    /// subrequest and a fallback would let a client choose which headers describe its request.
    ///
    /// Every other field of the decision request is taken as the original request's
    /// (`Authorization`, `Cookie`, API-key headers, `Origin`…). A description that is missing,
    /// or given twice, is refused with 400 before any decision (``refusedBeforeDecision``).
    /// - Parameters:
    ///   - method: the decision request's own method.
    ///   - target: the decision request's own target.
    ///   - fields: the decision request's header fields, in order.
    ///   - peer: the decision request's peer, a trusted proxy: the client address is the
    ///     rightmost `X-Forwarded-For` entry that is not itself one of `trusted_proxies`.
    package static func decisionRequest(
        method: String, target: String, fields: [(name: String, value: String)], peer: String, decisions: DecisionsConfig,
        policy: Policy
    ) -> RequestFacts {
        let described: [String]
        switch decisions.requestFrom {
        case .original: described = ["x-original-method", "x-original-uri", "x-original-host"]
        case .forwarded: described = ["x-forwarded-method", "x-forwarded-uri", "x-forwarded-host", "x-forwarded-proto"]
        case .target: described = ["host"]
        }
        var found = [[String]](repeating: [], count: described.count)
        var passed: [(name: String, value: String)] = []
        passed.reserveCapacity(fields.count + 1)
        for field in fields {
            if let index = described.firstIndex(where: { field.name.equalsIgnoringASCIICase($0) }) {
                found[index].append(field.value.trimmingSpaces())
            } else if decisions.requestFrom == .target || !field.name.equalsIgnoringASCIICase("host") {
                // The decision request's own Host names the decision service, not the original.
                passed.append(field)
            }
        }
        var facts: RequestFacts
        var problem: String?
        func one(_ index: Int, optional: Bool = false) -> String? {
            let values = found[index]
            let name = Self.headerNames[described[index]] ?? described[index]
            if values.count > 1 {
                problem = problem ?? "\(name) is given more than once"
            } else if values.isEmpty && !optional {
                problem = problem ?? "\(name) is missing"
            }
            return values.first
        }
        let client = ClientAddress.resolve(
            peer: peer, forwardedFor: fields.filter { $0.name.equalsIgnoringASCIICase("x-forwarded-for") }.map(\.value),
            trustedProxies: decisions.trustedProxies)
        switch decisions.requestFrom {
        case .original, .forwarded:
            let originalMethod = one(0) ?? ""
            let originalTarget = one(1) ?? ""
            let host = one(2)
            var tls = false
            if decisions.requestFrom == .forwarded, let proto = one(3) { tls = proto.lowercased() == "https" }
            if let host, !host.isEmpty { passed.insert(("Host", host), at: 0) }
            facts = Self.described(
                method: originalMethod, target: originalTarget, host: host, fields: passed, client: client, tls: tls, policy: policy)
        case .target:
            var stripped = target
            let prefix = decisions.pathPrefix
            if !prefix.isEmpty {
                // On a segment boundary: `/auth` takes `/auth/x` to `/x` and `/auth` to `/`,
                // and leaves `/authx` alone (refused: the edge proxy always adds the prefix).
                let bytes = Array(target.utf8)
                let prefixBytes = Array(prefix.utf8)
                if bytes.starts(with: prefixBytes)
                    && (bytes.count == prefixBytes.count || bytes[prefixBytes.count] == UInt8(ascii: "/")
                        || bytes[prefixBytes.count] == UInt8(ascii: "?"))
                {
                    stripped = String(decoding: bytes[prefixBytes.count...], as: UTF8.self)
                    if !stripped.hasPrefix("/") { stripped = "/" + stripped }
                } else {
                    problem = "the target does not start with decisions.path_prefix \(prefix)"
                }
            }
            let host = one(0, optional: true)
            facts = Self.described(method: method, target: stripped, host: host, fields: passed, client: client, tls: false, policy: policy)
        }
        facts.listener = .decisions
        if let problem {
            facts.refusedBeforeDecision = (Refusal(status: 400, detail: "Bad Request", reason: .badDecisionRequest), problem)
        }
        return facts
    }

    /// The spelling of the describing headers, for messages.
    private static let headerNames: [String: String] = [
        "x-original-method": "X-Original-Method", "x-original-uri": "X-Original-URI", "x-original-host": "X-Original-Host",
        "x-forwarded-method": "X-Forwarded-Method", "x-forwarded-uri": "X-Forwarded-Uri", "x-forwarded-host": "X-Forwarded-Host",
        "x-forwarded-proto": "X-Forwarded-Proto", "host": "Host",
    ]

    private static func described(
        method: String, target: String, host: String?, fields: [(name: String, value: String)], client: String, tls: Bool,
        policy: Policy
    ) -> RequestFacts {
        RequestFacts(
            method: method, rawTarget: target, host: host.flatMap { $0.isEmpty ? nil : $0 },
            authorization: fields.filter { $0.name.equalsIgnoringASCIICase("authorization") }.map(\.value),
            credentialHeaders: fields.filter { policy.credentialHeaderNames.contains($0.name.lowercased()) }, fields: fields,
            peer: client, tls: tls,
            requestID: RequestID.choose(fields.first { $0.name.equalsIgnoringASCIICase("x-request-id") }?.value))
    }
}
