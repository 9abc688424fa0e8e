#if canImport(Glibc)
import Glibc
#endif
import PortcullisCore
import PortcullisCrypto

/// The fuzz targets of the gateway's parsers. Each checks properties beyond "does not crash"
/// where there are some: a failed property traps, and libFuzzer keeps the input. The same
/// functions replay the committed corpus and every past finding in `swift test`.
package enum FuzzTarget: String, CaseIterable, Sendable {
    case requestTarget = "request-target"
    case jose
    case bearer
    case forms
    case credentials
    case keySets = "key-sets"
    case claims
    case config

    package func run(_ bytes: [UInt8]) {
        switch self {
        case .requestTarget: FuzzRequestTarget.run(bytes)
        case .jose: FuzzJOSE.run(bytes)
        case .bearer: FuzzBearer.run(bytes)
        case .forms: FuzzForms.run(bytes)
        case .credentials: FuzzCredentials.run(bytes)
        case .keySets: FuzzKeySets.run(bytes)
        case .claims: FuzzClaims.run(bytes)
        case .config: FuzzConfig.run(bytes)
        }
    }
}

/// Traps with `message` when a property does not hold: libFuzzer reports it as a crash and
/// keeps the input.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        let line = "property failed: \(message())\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        abort()
    }
}

/// Request targets: normalization and route matching. A normalized path normalizes to itself,
/// and matching never traps.
enum FuzzRequestTarget {
    static let patterns = ["/a/**", "/users/{id}/items/*", "/", "/x/y/", "/**"].compactMap { try? PathPattern($0, mergeSlashes: true) }

    static func run(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        for merge in [true, false] {
            guard case .success(let target) = RequestTarget.normalize(text, mergeSlashes: merge) else { continue }
            let again = RequestTarget.normalize(target.path, mergeSlashes: merge)
            guard case .success(let twice) = again else {
                require(false, "\(target.path) from \(text.debugDescription) does not normalize again")
                return
            }
            require(twice.path == target.path, "normalizing \(target.path) gives \(twice.path)")
            for pattern in Self.patterns { _ = pattern.matches(target.path[...]) }
        }
        _ = RequestTarget.isValidHost(text)
        _ = try? PathPattern(text, mergeSlashes: true)
    }
}

/// The compact JWS parser and the strict JSON parser: a value that parses serializes to text
/// that parses to the same value.
enum FuzzJOSE {
    static func run(_ bytes: [UInt8]) {
        if let value = JSONValue.parse(bytes) {
            let text = value.serialized
            require(JSONValue.parse(Array(text.utf8)) == value, "JSON round trip changed \(text)")
        }
        _ = try? CompactJWS(bytes)
    }
}

/// The whole Bearer verifier on arbitrary tokens against a fixed key set, through the
/// decision: never a forward unless the token really verifies.
enum FuzzBearer {
    static let policy: Policy = {
        let yaml = """
            version: 1
            jwt:
              issuers:
                - issuer: "https://fuzz.example"
                  algorithms: [HS256]
                  keys: [{ kid: k1, secret_env: FUZZ_SECRET }]
                  roles_claims: [realm_access.roles]
            upstreams: { u: { url: "http://127.0.0.1:9" } }
            routes:
              - { name: r, match: { path: "/**" }, upstream: u }
            """
        let environment = FixedEnvironment(variables: ["FUZZ_SECRET": String(repeating: "k", count: 32)])
        return Policy(config: ConfigLoader.load(text: yaml, file: "fuzz.yaml", environment: environment).config!)
    }()

    static func run(_ bytes: [UInt8]) {
        guard let token = String(validating: bytes, as: UTF8.self) else { return }
        let facts = RequestFacts(method: "GET", rawTarget: "/x", host: "h", authorization: ["Bearer " + token])
        if case .forward = Self.policy.decide(facts, now: 1_700_000_000) {
            // Only a token signed with the key can pass: a fuzzer that forges one found a hole.
            // The token is what the header holds without the spaces around it (RFC 9110 §11.4
            // allows several after the scheme), and nothing else.
            var presented = Substring(token)
            while let first = presented.first, first == " " || first == "\t" { presented = presented.dropFirst() }
            while let last = presented.last, last == " " || last == "\t" { presented = presented.dropLast() }
            require(presented.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).count == 3,
                    "forwarded a token that is not a JWS: \(token)")
            require(Self.policy.verifier.verify(presented, now: 1_700_000_000).isSuccess, "forwarded an unverified token")
        }
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
}

/// The token endpoint's form parsers, url-encoded and multipart.
enum FuzzForms {
    static func run(_ bytes: [UInt8]) {
        _ = try? FormFields.parse(contentType: "application/x-www-form-urlencoded", body: bytes)
        _ = try? FormFields.parse(contentType: "multipart/form-data; boundary=XyZ", body: bytes)
        if let split = bytes.firstIndex(of: 0x0A), let type = String(validating: bytes[..<split], as: UTF8.self) {
            _ = try? FormFields.parse(contentType: type, body: Array(bytes[(split + 1)...]))
        }
    }
}

/// Basic credentials and API keys in headers, queries and cookies, through the decision:
/// a request without a known key is never forwarded.
enum FuzzCredentials {
    static let policy: Policy = {
        let yaml = """
            version: 1
            users:
              - { username: u, password_hash: "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc", scopes: [a] }
            api_keys:
              - { name: h, key_hash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", scopes: [], in: header, param: X-Key }
              - { name: q, key_hash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", scopes: [], in: query, param: key }
              - { name: c, key_hash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", scopes: [], in: cookie, param: key }
            upstreams: { u: { url: "http://127.0.0.1:9" } }
            routes:
              - { name: r, match: { path: "/**" }, auth: [basic, api_key], upstream: u }
            """
        return Policy(config: ConfigLoader.load(text: yaml, file: "fuzz.yaml").config!)
    }()

    static func run(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        let parts = text.split(separator: "\n", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        let authorization = parts.count > 0 ? [parts[0]] : []
        let header = parts.count > 1 ? [("X-Key", parts[1])] : []
        let cookie = parts.count > 2 ? [("Cookie", parts[2])] : []
        let query = parts.count > 3 ? "?" + parts[3].filter { $0 != "#" && $0.isASCII && !$0.isWhitespace } : ""
        let facts = RequestFacts(
            method: "GET", rawTarget: "/x" + query, host: "h", authorization: authorization, credentialHeaders: header + cookie)
        // "foo" is the only key, and no Argon2 check runs here: only a request that presents
        // it (percent-encoded, in a query) may be forwarded.
        if case .forward(let plan) = Self.policy.decide(facts, now: 1_700_000_000) {
            require(text.contains("foo") || text.contains("%"), "forwarded without the key: \(text.debugDescription)")
            require(plan.identity?.method == .apiKey, "forwarded without an API key identity")
        }
    }
}

/// JWKS documents (a local file's and a provider's) and OpenID discovery documents.
enum FuzzKeySets {
    static let set = RemoteKeySet(
        issuer: "https://fuzz.example", url: "https://fuzz.example/.well-known/openid-configuration", refresh: 60_000,
        discovery: true, onChange: {})

    static func run(_ bytes: [UInt8]) {
        _ = try? JWK.parseSet(bytes, allowSecrets: true)
        if let (keys, _) = try? JWK.parsePublishedSet(bytes) {
            for key in keys {
                if case .secret = key.key { require(false, "a published set yielded a shared secret") }
            }
        }
        if case .success(let url) = Self.set.acceptDiscovery(bytes) {
            require(url.lowercased().hasPrefix("http"), "accepted a jwks_uri that is no http(s) URL: \(url)")
        }
    }
}

/// Claim paths and claim conditions.
enum FuzzClaims {
    static func run(_ bytes: [UInt8]) {
        guard let split = bytes.firstIndex(of: 0x0A) else { return }
        guard let pathText = String(validating: bytes[..<split], as: UTF8.self) else { return }
        let json = JSONValue.parse(Array(bytes[(split + 1)...])) ?? .object([:])
        guard let path = ClaimPath(pathText) else { return }
        require(path.description == pathText, "a claim path does not keep its text")
        require(!path.segments.isEmpty, "a claim path without segments")
        let value = path.lookup(json)
        for test in [ClaimCondition.Test.present(true), .present(false), .equals(.bool(true)), .contains(.string("x"))] {
            let held = ClaimCondition(path: path, test: test, location: SourceLocation(file: "f", line: 1, column: 1)).holds(json)
            if case .present(let wanted) = test { require(held == (wanted == (value != nil)), "present disagrees with lookup") }
        }
        if let value { _ = ClaimReading.headerText(value).map { text in
            require(!text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x2028 }, "a claim header with a control character")
        } }
    }
}

/// The configuration loader on arbitrary YAML: a configuration or diagnostics with a place,
/// never a crash or a hang; a refused file has at least one error.
enum FuzzConfig {
    static func run(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        let result = ConfigLoader.load(text: text, file: "fuzz.yaml")
        if result.config == nil {
            require(result.diagnostics.hasErrors, "a refused configuration with no error")
        }
        for diagnostic in result.diagnostics.all {
            require(diagnostic.location.line >= 1 && diagnostic.location.column >= 1, "a diagnostic without a place")
        }
        _ = PolicyCaseLoader.load(text: text, file: "fuzz.yaml", environment: FixedEnvironment())
    }
}
