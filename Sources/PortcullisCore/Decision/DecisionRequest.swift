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
        method: String, target: String, fields: consuming [(name: String, value: String)], peer: String,
        decisions: DecisionsConfig, policy: Policy
    ) -> RequestFacts {
        // One pass over the fields: what describes the original request, and what the
        // decision reads of the rest.
        let roles = decisions.requestFrom.fieldRoles
        var found = DescribingValues()
        // The fields passed on are those of the request less the description: kept in place,
        // in order, at the front of the array.
        var passed = fields
        var kept = 0
        var forwardedFor: [String] = []
        var authorization: [String] = []
        var credentialHeaders: [(name: String, value: String)] = []
        var givenRequestID: String?
        let credentialNames = policy.credentialHeaderNames
        for index in passed.indices {
            let field = passed[index]
            // Each name is compared only with the read names of its own length.
            let length = field.name.utf8.count
            var role = FieldRole.other
            for entry in roles where entry.length == length && field.name.equalsIgnoringASCIICase(entry.name) {
                role = entry.role
                break
            }
            switch role {
            case .describing(let place):
                found.add(field.value.trimmingSpaces(), at: place)
                continue
            case .host:
                // The decision request's own Host names the decision service, not the original.
                continue
            case .forwardedFor:
                forwardedFor.append(field.value)
            case .authorization:
                authorization.append(field.value)
            case .requestID:
                if givenRequestID == nil { givenRequestID = field.value }
            case .other:
                break
            }
            if kept != index { passed.swapAt(kept, index) }
            kept += 1
            if !credentialNames.isEmpty && credentialNames.contains(where: { field.name.equalsIgnoringASCIICase($0) }) {
                credentialHeaders.append(field)
            }
        }
        passed.removeLast(passed.count - kept)
        var facts: RequestFacts
        var problem: String?
        func one(_ index: Int, optional: Bool = false) -> String? {
            let count = found.count(at: index)
            if count > 1 {
                problem = problem ?? "\(decisions.requestFrom.describingFieldSpellings[index]) is given more than once"
            } else if count == 0 && !optional {
                problem = problem ?? "\(decisions.requestFrom.describingFieldSpellings[index]) is missing"
            }
            return found.first(at: index)
        }
        let client = ClientAddress.resolve(peer: peer, forwardedFor: forwardedFor, trustedProxies: decisions.trustedProxies)
        let requestID = RequestID.choose(givenRequestID)
        switch decisions.requestFrom {
        case .original, .forwarded:
            let originalMethod = one(0) ?? ""
            let originalTarget = one(1) ?? ""
            let host = one(2)
            var tls = false
            if decisions.requestFrom == .forwarded, let proto = one(3) { tls = proto.lowercased() == "https" }
            if let host, !host.isEmpty {
                passed.insert(("Host", host), at: 0)
                if credentialNames.contains("host") { credentialHeaders.insert(("Host", host), at: 0) }
            }
            facts = RequestFacts(
                method: originalMethod, rawTarget: originalTarget, host: host.flatMap { $0.isEmpty ? nil : $0 },
                authorization: authorization, credentialHeaders: credentialHeaders, fields: passed, peer: client, tls: tls,
                requestID: requestID)
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
            facts = RequestFacts(
                method: method, rawTarget: stripped, host: host.flatMap { $0.isEmpty ? nil : $0 }, authorization: authorization,
                credentialHeaders: credentialHeaders, fields: passed, peer: client, tls: false, requestID: requestID)
        }
        facts.listener = .decisions
        if let problem {
            facts.refusedBeforeDecision = (Refusal(status: 400, detail: "Bad Request", reason: .badDecisionRequest), problem)
        }
        return facts
    }
}

/// What a field of a decision request is to ``RequestFacts/decisionRequest(method:target:fields:peer:decisions:policy:)``.
private enum FieldRole {
    /// One of the fields that describe the original request, by its place in
    /// ``DecisionsConfig/RequestFrom/describingFieldSpellings``.
    case describing(Int)
    /// The decision request's own `Host` (not a describing field in this mode).
    case host
    case forwardedFor
    case authorization
    case requestID
    case other
}

extension DecisionsConfig.RequestFrom {
    /// The field names the description reads, lowercase, with their lengths and roles: the
    /// describing fields first, so that `X-Forwarded-Host` describes in `forwarded` mode, and
    /// `Host` describes in `target` mode.
    fileprivate var fieldRoles: [(name: String, length: Int, role: FieldRole)] {
        switch self {
        case .original: Self.originalRoles
        case .forwarded: Self.forwardedRoles
        case .target: Self.targetRoles
        }
    }

    /// The same fields as messages spell them.
    fileprivate var describingFieldSpellings: [String] {
        switch self {
        case .original: ["X-Original-Method", "X-Original-URI", "X-Original-Host"]
        case .forwarded: ["X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host", "X-Forwarded-Proto"]
        case .target: ["Host"]
        }
    }

    private static func roles(describing: [String], host: Bool) -> [(name: String, length: Int, role: FieldRole)] {
        var roles: [(name: String, role: FieldRole)] = describing.enumerated().map { ($0.element, .describing($0.offset)) }
        if host { roles.append(("host", .host)) }
        roles += [("x-forwarded-for", .forwardedFor), ("authorization", .authorization), ("x-request-id", .requestID)]
        return roles.map { ($0.name, $0.name.utf8.count, $0.role) }
    }

    private static let originalRoles = roles(describing: ["x-original-method", "x-original-uri", "x-original-host"], host: true)
    private static let forwardedRoles = roles(
        describing: ["x-forwarded-method", "x-forwarded-uri", "x-forwarded-host", "x-forwarded-proto"], host: true)
    private static let targetRoles = roles(describing: ["host"], host: false)
}

/// The values of the (at most four) describing fields: the first of each, and how many came.
private struct DescribingValues {
    private var firsts: (String?, String?, String?, String?) = (nil, nil, nil, nil)
    private var counts: (Int, Int, Int, Int) = (0, 0, 0, 0)

    mutating func add(_ value: String, at index: Int) {
        switch index {
        case 0:
            if self.counts.0 == 0 { self.firsts.0 = value }
            self.counts.0 += 1
        case 1:
            if self.counts.1 == 0 { self.firsts.1 = value }
            self.counts.1 += 1
        case 2:
            if self.counts.2 == 0 { self.firsts.2 = value }
            self.counts.2 += 1
        default:
            if self.counts.3 == 0 { self.firsts.3 = value }
            self.counts.3 += 1
        }
    }

    func first(at index: Int) -> String? {
        switch index {
        case 0: self.firsts.0
        case 1: self.firsts.1
        case 2: self.firsts.2
        default: self.firsts.3
        }
    }

    func count(at index: Int) -> Int {
        switch index {
        case 0: self.counts.0
        case 1: self.counts.1
        case 2: self.counts.2
        default: self.counts.3
        }
    }
}
