import PortcullisCrypto
internal import Yams

/// Reads a policy test file strictly: unknown keys and bad values are errors with
/// `FILE:LINE:COL`, as in `routes.yaml`.
package enum PolicyCaseLoader {
    package struct Result: Sendable {
        package var cases: [PolicyCase]
        package var diagnostics: ConfigDiagnostics
    }

    static let caseKeys = ["name", "request", "token", "bearer", "basic", "claims", "issuer", "now", "listener", "expect"]

    package static func load(text: String, file: String, environment: any ConfigEnvironment) -> Result {
        let reader = ConfigReader(file: file)
        guard let root = ConfigLoader.compose(text, reader) else { return Result(cases: [], diagnostics: reader.diagnostics) }
        guard let top = reader.mapping(root, "the test file", keys: ["cases"]),
            let list = top.required("cases", as: "the test file"), let items = reader.sequence(list, "cases")
        else { return Result(cases: [], diagnostics: reader.diagnostics) }
        var cases: [PolicyCase] = []
        for item in items {
            if let parsed = self.readCase(item, reader, environment) { cases.append(parsed) }
        }
        return Result(cases: cases, diagnostics: reader.diagnostics)
    }

    private static func readCase(_ node: Node, _ reader: ConfigReader, _ environment: any ConfigEnvironment) -> PolicyCase? {
        guard let fields = reader.mapping(node, "a case", keys: self.caseKeys) else { return nil }
        guard let nameNode = fields.required("name", as: "a case"), let name = reader.string(nameNode, "case name") else {
            return nil
        }
        let what = "case '\(name)'"
        guard let requestNode = fields.required("request", as: what),
            let request = reader.mapping(requestNode, "\(what) request", keys: ["method", "path", "headers"]),
            let pathNode = request.required("path", as: "\(what) request"),
            let path = reader.string(pathNode, "\(what) request.path")
        else { return nil }
        let method = request["method"].flatMap { reader.string($0, "\(what) request.method") } ?? "GET"
        var headers: [(name: String, value: String)] = []
        if let node = request["headers"] {
            if case .mapping(let mapping) = node {
                for (key, value) in mapping {
                    if let headerName = reader.string(key, "a header name"), let headerValue = reader.string(value, "header \(headerName)", allowEmpty: true) {
                        headers.append((headerName, headerValue))
                    }
                }
            } else {
                reader.error(.wrongType, node, "\(what) request.headers must be a mapping of names to values")
            }
        }
        var credentials = PolicyCase.Credentials.none
        let given = ["token", "bearer", "basic", "claims"].filter { fields[$0] != nil }
        if given.count > 1 {
            reader.error(.badValue, node, "\(what) may give only one of token, bearer, basic, claims")
        }
        if let node = fields["token"], let token = reader.mapping(node, "\(what) token", keys: ["sub", "scope", "ttl"]) {
            let subject = token.required("sub", as: "\(what) token").flatMap { reader.string($0, "\(what) token.sub") } ?? ""
            let scope = token["scope"].flatMap { reader.string($0, "\(what) token.scope", allowEmpty: true) } ?? ""
            let ttl = token["ttl"].flatMap { reader.duration($0, "\(what) token.ttl") }.map { max(1, $0 / 1000) }
            credentials = .minted(subject: subject, scopes: scope.split(separator: " ").map(String.init), ttlSeconds: ttl)
        }
        if let node = fields["claims"], let claims = ConfigLoader.jsonValue(node, "\(what) claims", reader) {
            if case .object = claims {
                let issuer = fields["issuer"].flatMap { reader.string($0, "\(what) issuer") }
                credentials = .claims(issuer: issuer, claims: claims)
            } else {
                reader.error(.wrongType, node, "\(what) claims must be a mapping of claim names to values")
            }
        } else if let node = fields.keyNode("issuer") {
            reader.error(.badValue, node, "\(what) gives an issuer without claims")
        }
        if let node = fields["bearer"], let raw = reader.string(node, "\(what) bearer") {
            credentials = .bearer(raw)
        }
        if let node = fields["basic"],
            let basic = reader.mapping(node, "\(what) basic", keys: ["username", "password", "password_env"])
        {
            let username = basic.required("username", as: "\(what) basic").flatMap { reader.string($0, "\(what) basic.username") } ?? ""
            var password = ""
            if basic["password"] != nil, let envKey = basic.keyNode("password_env") {
                reader.error(.badValue, envKey, "\(what) basic gives password and password_env; give one")
            }
            if let passwordNode = basic["password"], let value = reader.string(passwordNode, "\(what) basic.password", allowEmpty: true) {
                password = value
            } else if let envNode = basic["password_env"], let variable = reader.string(envNode, "\(what) basic.password_env") {
                if let value = environment.variable(variable) {
                    password = value
                } else {
                    reader.error(.badValue, envNode, "the environment variable \(variable) is not set")
                }
            } else {
                reader.error(.missingKey, node, "\(what) basic needs password or password_env")
            }
            credentials = .basic(username: username, password: password)
        }
        var now: Double?
        if let node = fields["now"], let text = reader.string(node, "\(what) now") {
            if let parsed = RFC3339Time.parse(text) {
                now = parsed
            } else {
                reader.error(.badValue, node, "\(what) now must be an RFC 3339 time such as 2026-01-01T12:00:00Z")
            }
        }
        var listener = Listener.proxy
        if let node = fields["listener"], let text = reader.string(node, "\(what) listener") {
            if let value = Listener(rawValue: text) {
                listener = value
            } else {
                reader.error(.badValue, node, "\(what) listener must be 'public' or 'decisions', found '\(text)'")
            }
        }
        var expect = PolicyCase.Expectation()
        if let node = fields.required("expect", as: what),
            let fieldsOfExpect = reader.mapping(node, "\(what) expect", keys: ["status", "route", "upstream_path", "challenge", "headers"])
        {
            expect.status = fieldsOfExpect["status"].flatMap { reader.integer($0, "\(what) expect.status", range: 100...599) }
            expect.route = fieldsOfExpect["route"].flatMap { reader.string($0, "\(what) expect.route") }
            expect.upstreamPath = fieldsOfExpect["upstream_path"].flatMap { reader.string($0, "\(what) expect.upstream_path") }
            expect.challenge = fieldsOfExpect["challenge"].flatMap { reader.string($0, "\(what) expect.challenge") }
            if let headersNode = fieldsOfExpect["headers"] {
                if case .mapping(let mapping) = headersNode {
                    for (key, value) in mapping {
                        if let headerName = reader.string(key, "a header name"), let headerValue = reader.string(value, "header \(headerName)", allowEmpty: true) {
                            expect.headers.append((headerName, headerValue))
                        }
                    }
                } else {
                    reader.error(.wrongType, headersNode, "\(what) expect.headers must be a mapping of names to values")
                }
            }
            if fieldsOfExpect.entries.isEmpty { reader.error(.badValue, node, "\(what) expects nothing") }
        }
        return PolicyCase(
            name: name, location: reader.location(fields.keyNode("name") ?? node), method: method, path: path, headers: headers,
            credentials: credentials, now: now, listener: listener, expect: expect)
    }
}

/// RFC 3339 timestamps (`2026-01-01T12:00:00Z`, `…+02:00`, fractional seconds allowed).
package enum RFC3339Time {
    package static func parse(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[range] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] | 0x20 == UInt8(ascii: "t"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 {
                fraction += Double(bytes[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        guard index < bytes.count else { return nil }
        if bytes[index] | 0x20 == UInt8(ascii: "z") {
            index += 1
        } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            guard let hours = number((index + 1)..<(index + 3)), index + 3 < bytes.count, bytes[index + 3] == UInt8(ascii: ":"),
                let minutes = number((index + 4)..<(index + 6))
            else { return nil }
            offset = (hours * 60 + minutes) * 60 * (bytes[index] == UInt8(ascii: "+") ? 1 : -1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second - offset) + fraction
    }
}
