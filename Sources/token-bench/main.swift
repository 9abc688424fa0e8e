// What one token check costs inside the gateway, without the network: for each algorithm, the
// whole cache-off check (`BearerVerifier.verify`: split, base64url, strict JSON, key choice,
// signature, claims, scopes) against the signature operation alone, in CPU time of this thread.
// `make bench` runs it beside `openssl speed`, which gives the floor for the signature.
//
//   token-bench KEYDIR   (KEYDIR holds RS256.key/.pub and ES256.key/.pub as PEM; optional)
//   token-bench --decisions   (only the decisions, as long as asked: for `perf record`)
import PortcullisCore
import PortcullisCrypto

#if canImport(Glibc)
import Glibc
#endif

let secret = "benchsecretbenchsecretbenchsecret12"
let onlyDecisions = CommandLine.arguments.dropFirst().first == "--decisions"
let keyDirectory = onlyDecisions ? nil : CommandLine.arguments.dropFirst().first

func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// CPU microseconds per call of `body`, the best of five runs of `iterations` calls.
func measure(_ iterations: Int, _ body: () -> Bool) -> Double {
    var best = Double.infinity
    for _ in 0..<5 {
        let start = threadCPUSeconds()
        for _ in 0..<iterations { precondition(body(), "a check that must pass failed") }
        best = min(best, (threadCPUSeconds() - start) / Double(iterations) * 1e6)
    }
    return best
}

func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[..<count]
    }
    return bytes
}

func configuration(_ algorithm: String) -> (text: String, environment: FixedEnvironment)? {
    let verifying: String
    let signing: String
    var files: [String: [UInt8]] = [:]
    if algorithm.hasPrefix("HS") {
        verifying = "{ kid: k1, secret_env: SECRET }"
        signing = "{ alg: \(algorithm), kid: k1, secret_env: SECRET }"
    } else {
        guard let keyDirectory, let publicPEM = readFile("\(keyDirectory)/\(algorithm).pub"),
            let privatePEM = readFile("\(keyDirectory)/\(algorithm).key")
        else { return nil }
        files["/keys/public.pem"] = publicPEM
        files["/keys/private.pem"] = privatePEM
        verifying = "{ kid: k1, public_key_file: /keys/public.pem }"
        signing = "{ alg: \(algorithm), kid: k1, private_key_file: /keys/private.pem }"
    }
    let text = """
        version: 1
        jwt:
          cache_size: 0
          issuers:
            - { issuer: "https://bench.local", audiences: [api], algorithms: [\(algorithm)], keys: [ \(verifying) ] }
        token_endpoint: { issuer: "https://bench.local", audience: api, signing_key: \(signing), store: "memory:" }
        upstreams: { echo: { url: "http://127.0.0.1:9" } }
        routes:
          - { name: items, match: { path: /items }, scopes: [items], upstream: echo }
        """
    return (text, FixedEnvironment(variables: ["SECRET": secret], files: files))
}

func load(_ text: String, _ environment: FixedEnvironment) -> GatewayConfig {
    let loaded = ConfigLoader.load(text: text, file: "bench.yaml", environment: environment)
    guard let config = loaded.config else { fatalError("the benchmark's configuration did not load: \(loaded.diagnostics)") }
    return config
}

/// `value` with two decimals.
func fixed(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = abs(hundredths) % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

/// `text` right-aligned in `width` characters (left-aligned for the first column).
func column(_ text: String, _ width: Int) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return width == 9 && text.first?.isLetter == true ? text + padding : padding + text
}

if !onlyDecisions { print("algorithm  check µs  signature µs  the rest µs") }
for (algorithm, iterations) in onlyDecisions ? [] : [("HS256", 100_000), ("RS256", 10_000), ("ES256", 4_000)] {
    guard let (text, environment) = configuration(algorithm) else {
        print("\(algorithm): no keys in \(keyDirectory ?? "(no KEYDIR given)")")
        continue
    }
    let config = load(text, environment)
    guard let endpoint = config.tokenEndpoint, let key = config.jwt.issuers.first?.keys.first else {
        fatalError("the benchmark's configuration has no token endpoint or key")
    }
    let now = Double(time(nil))
    let token = try TokenMinter.mint(endpoint, subject: "bench", scopes: ["items"], ttlSeconds: 7200, now: now)
    let verifier = BearerVerifier(config: config)
    let jws = try CompactJWS(Array(token.utf8))
    let jwsAlgorithm = JWSAlgorithm(rawValue: algorithm)!
    let check = measure(iterations) {
        if case .success = verifier.verify(Substring(token), now: now) { return true }
        return false
    }
    let signature = measure(iterations) { jws.verify(algorithm: jwsAlgorithm, key: key.key) }
    print(column(algorithm, 9) + column(fixed(check), 9) + column(fixed(signature), 14) + column(fixed(check - signature), 13))
}

// What one decision costs without the network: the decision service's whole pure step (read
// the edge proxy's description, decide with the verified-token cache warm, build the answer),
// and the public listener's decision for the same request, in CPU time of this thread.
func decisionConfiguration() -> GatewayConfig {
    let text = """
        version: 1
        server: { listen: "127.0.0.1:0", admin_listen: "" }
        decisions: { listen: "127.0.0.1:0", request_from: original, trusted_proxies: ["127.0.0.1/32"] }
        jwt:
          cache_size: 10000
          issuers:
            - { issuer: "https://bench.local", audiences: [api], algorithms: [HS256], keys: [ { kid: k1, secret_env: SECRET } ] }
        token_endpoint: { issuer: "https://bench.local", audience: api, signing_key: { alg: HS256, kid: k1, secret_env: SECRET }, store: "memory:" }
        upstreams: { echo: { url: "http://127.0.0.1:9" } }
        routes:
          - { name: open, match: { path: /bench }, auth: none, upstream: echo }
          - { name: items, match: { path: /items }, scopes: [items], upstream: echo }
        """
    return load(text, FixedEnvironment(variables: ["SECRET": secret], files: [:]))
}

func decided(_ policy: Policy, _ facts: RequestFacts, now: Double) -> Decision? {
    var loop = DecisionLoop(policy: policy, facts: facts)
    if case .decided(let decision) = loop.start(now: now) { return decision }
    return nil
}

do {
    let config = decisionConfiguration()
    let policy = Policy(config: config)
    let now = Double(time(nil))
    let token = try TokenMinter.mint(config.tokenEndpoint!, subject: "bench", scopes: ["items"], ttlSeconds: 7200, now: now)
    let described: [(name: String, value: String)] = [
        ("Host", "127.0.0.1:9902"), ("X-Original-Method", "GET"), ("X-Original-URI", "/items"),
        ("X-Original-Host", "example.com"), ("X-Forwarded-For", "10.1.2.3"),
        ("X-Request-Id", "0123456789abcdef0123456789abcdef"), ("Connection", "keep-alive"),
    ]
    func decision(_ fields: [(name: String, value: String)], status: Int) -> () -> Bool {
        {
            let facts = RequestFacts.decisionRequest(
                method: "GET", target: "/auth", fields: fields, peer: "127.0.0.1", decisions: config.decisions!,
                policy: policy)
            guard let decision = decided(policy, facts, now: now) else { return false }
            return policy.decisionServiceAnswer(decision, requestID: facts.requestID).status == status
        }
    }
    let allowed = decision(described + [("Authorization", "Bearer \(token)")], status: 200)
    let refused = decision(described, status: 401)
    // The same request for an `auth: none` route: what deciding costs besides the token check.
    let open = decision(
        described.map { $0.name == "X-Original-URI" ? ($0.name, "/bench") : $0 } + [("Authorization", "Bearer \(token)")],
        status: 200)
    let proxied = {
        let facts = RequestFacts(
            method: "GET", rawTarget: "/items", host: "example.com", authorization: ["Bearer \(token)"],
            fields: [("Host", "example.com"), ("Authorization", "Bearer \(token)")], peer: "10.1.2.3",
            requestID: RequestID.choose(nil))
        if case .forward = decided(policy, facts, now: now) { return true }
        return false
    }
    print("")
    print("one decision, in process, CPU µs:")
    print("  decision service, HS256 allowed (cache warm)  " + fixed(measure(100_000, allowed)))
    print("  decision service, 401 without token          " + fixed(measure(100_000, refused)))
    print("  decision service, auth: none, token carried  " + fixed(measure(100_000, open)))
    print("  public listener, HS256 allowed (cache warm)   " + fixed(measure(100_000, proxied)))
}
