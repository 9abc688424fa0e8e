import ArgumentParser
import Foundation
import PortcullisCore
import PortcullisCrypto
import PortcullisServer

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dry-run one request through the policy and print the decision trace.",
        discussion: "Exit status: 0 would forward, 1 denied, 2 configuration or usage error. No network is used.")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Send this JWT as 'Authorization: Bearer JWT'.")
    var token: String?

    @Option(name: .long, help: "Send Basic credentials USER:PASS.")
    var basic: String?

    @Option(name: .long, help: "Mint a token for this subject with the configured signing key.")
    var mintSub: String?

    @Option(name: .long, help: "Scopes of the minted token, space-separated.")
    var mintScope: String = ""

    @Option(name: .long, help: "Evaluate time-based claims at this instant (RFC 3339); minted tokens are still issued now.")
    var now: String?

    @Option(name: .customShort("H"), help: "A request header, 'Name: value' (repeatable).")
    var header: [String] = []

    @Option(name: .long, help: "Decide as if a verified token with these claims (a JSON object) had been presented.")
    var claims: String?

    @Option(name: .long, help: "The issuer the --claims come from (default: the only configured one).")
    var issuer: String?

    @Option(name: .long, help: "The client address the request comes from, as serve would see its peer.")
    var peer: String = "127.0.0.1"

    @Option(name: .long, help: "public (the default), or decisions: decide as the decision service does, and print its answer.")
    var listener: String = "public"

    @Flag(name: .long, help: "Print the trace as one JSON object.")
    var json = false

    @Argument(help: "The request method.")
    var method: String

    @Argument(help: "An origin-form path with optional query, or an absolute URL.")
    var target: String

    func run() throws {
        var instant = WallClock.now()
        if let now = self.now {
            guard let parsed = RFC3339Time.parse(now) else { throw ValidationError("--now must be an RFC 3339 time such as 2026-01-01T12:00:00Z") }
            instant = parsed
        }
        var headers: [(name: String, value: String)] = []
        for line in self.header {
            guard let colon = line.firstIndex(of: ":"), HeaderName.isToken(String(line[..<colon])) else {
                throw ValidationError("-H needs 'Name: value', got '\(line)'")
            }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        guard let listener = Listener(rawValue: self.listener) else {
            throw ValidationError("--listener must be public or decisions")
        }
        let result = self.options.load()
        guard let config = result.config else {
            for diagnostic in result.diagnostics.errors { printError(diagnostic.description) }
            throw ExitCode(2)
        }
        if listener == .decisions && config.decisions == nil {
            printError("\(self.options.path): --listener decisions needs a decisions section")
            throw ExitCode(2)
        }
        if let token = self.token { headers.append(("Authorization", "Bearer \(token)")) }
        if let basic = self.basic { headers.append(("Authorization", "Basic \(Data(basic.utf8).base64EncodedString())")) }
        if let subject = self.mintSub {
            guard let endpoint = config.tokenEndpoint else {
                printError("\(self.options.path): --mint-sub needs token_endpoint.signing_key")
                throw ExitCode(2)
            }
            let minted = try TokenMinter.mint(
                endpoint, subject: subject, scopes: self.mintScope.split(separator: " ").map(String.init),
                ttlSeconds: endpoint.accessTokenTTL / 1000, now: WallClock.now())
            headers.append(("Authorization", "Bearer \(minted)"))
        }
        let policy = Policy(config: config)
        var facts = RequestFacts.dryRun(
            method: self.method, target: self.target, headers: headers, peer: self.peer, tls: policy.config.server.tls != nil,
            policy: policy)
        facts.listener = listener
        if let text = self.claims {
            guard let claims = JSONValue.parse(Array(text.utf8)), case .object = claims else {
                printError("--claims needs a JSON object, such as '{\"sub\":\"alice\",\"scope\":\"read\"}'")
                throw ExitCode(2)
            }
            switch policy.assumedIssuer(self.issuer) {
            case .success(let issuer): facts.assumedToken = (issuer, claims)
            case .failure(let error):
                printError("--claims: \(error.text)")
                throw ExitCode(2)
            }
        } else if self.issuer != nil {
            printError("--issuer goes with --claims")
            throw ExitCode(2)
        }
        var trace = Trace()
        let decision = policy.decideCompletely(facts, now: instant, recorder: &trace)
        var report = TraceReport(facts: facts, trace: trace, decision: decision, policy: policy)
        if listener == .decisions { report.serviceAnswer = policy.decisionServiceAnswer(decision, requestID: facts.requestID) }
        printOut(self.json ? report.json : report.text)
        if let set = decision.keySetToRefresh, !set.isLoaded {
            // The live gateway would fetch this set and may find the key: no verdict offline.
            printError("check cannot decide offline: the token's key would come from \(set.displayURL), which check does not fetch")
            throw ExitCode(2)
        }
        switch decision {
        case .refuse: throw ExitCode(1)
        case .forward(let plan) where plan.shadowed != nil: throw ExitCode(1)  // would be refused once enforced
        case .forward, .verify, .serve: break
        }
    }
}

/// RFC 3339 timestamps in traces.
enum RFC3339 {
    static func format(_ seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }
}
