import ArgumentParser
import Foundation
import PortcullisCore
import PortcullisServer

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a configuration change does to requests.",
        discussion: """
            Decides a probe set made from both configurations (every route's methods, sample paths and hosts, \
            with no credentials, with claims meeting exactly the route's requirements, and with each one \
            missing), plus the cases of the given files, and prints every probe whose answer differs. \
            No secrets are needed. Exit status: 0 no difference, 1 differences, 2 an error in either file.
            """)

    @Argument(help: "The configuration before the change.")
    var old: String

    @Argument(help: "The configuration after the change.")
    var new: String

    @Argument(help: "Case files whose requests are probes too.")
    var cases: [String] = []

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        guard let before = Self.policy(self.old), let after = Self.policy(self.new) else { throw ExitCode(2) }
        var loaded: [PolicyCase] = []
        for file in self.cases {
            guard let data = try? BoundedFile.read(file), let text = String(validating: data, as: UTF8.self) else {
                printError("\(file):1:1: error: cannot read the case file")
                throw ExitCode(2)
            }
            let result = PolicyCaseLoader.load(text: text, file: file, environment: ProcessConfigEnvironment(configFile: file))
            for diagnostic in result.diagnostics.sorted { printError(diagnostic.description) }
            if result.diagnostics.hasErrors { throw ExitCode(2) }
            loaded += result.cases
        }
        let (count, differences) = PolicyDiff.differences(old: before, new: after, cases: loaded, now: WallClock.now())
        printOut(self.json ? Self.json(differences, probes: count) : Self.text(differences, probes: count))
        if !differences.isEmpty { throw ExitCode(1) }
    }

    /// A configuration as `diff` reads it: secrets that are not in the environment are stood in
    /// for, since claims are decided without keys.
    static func policy(_ path: String) -> Policy? {
        var options = ConfigOptions()
        options.config = path
        let result = options.load(environment: PlaceholderSecrets(base: ProcessConfigEnvironment(configFile: path)))
        for diagnostic in result.diagnostics.errors { printError(diagnostic.description) }
        return result.config.map(Policy.init(config:))
    }

    static func text(_ differences: [PolicyDiff.Difference], probes: Int) -> String {
        guard !differences.isEmpty else { return "no difference in \(probes) probes" }
        var lines: [String] = []
        var lastRoute: String?
        for difference in differences {
            let route = difference.new.route ?? difference.old.route ?? difference.probe.route ?? "-"
            if route != lastRoute {
                lines.append("route \(route)")
                lastRoute = route
            }
            lines.append("  \(difference.kind): \(difference.probe.request), \(difference.probe.label)")
            lines.append("    old: " + Self.describe(difference.old))
            lines.append("    new: " + Self.describe(difference.new))
        }
        lines.append("\(differences.count) of \(probes) probes differ")
        return lines.joined(separator: "\n")
    }

    static func describe(_ answer: PolicyDiff.Answer) -> String {
        var text = "\(answer.status)"
        if let route = answer.route { text += " route \(route)" } else { text += " no route" }
        if let upstream = answer.upstreamURL { text += " → \(upstream)" }
        if let challenge = answer.challenge { text += " [\(challenge)]" }
        if !answer.identity.isEmpty { text += " {" + answer.identity.joined(separator: "; ") + "}" }
        return text
    }

    static func json(_ differences: [PolicyDiff.Difference], probes: Int) -> String {
        func answer(_ answer: PolicyDiff.Answer) -> String {
            "{\"route\":\(answer.route.map(JSONText.string) ?? "null"),\"status\":\(answer.status),"
                + "\"challenge\":\(answer.challenge.map(JSONText.string) ?? "null"),"
                + "\"upstream\":\(answer.upstreamURL.map(JSONText.string) ?? "null"),"
                + "\"identity\":[\(answer.identity.map(JSONText.string).joined(separator: ","))]}"
        }
        let items = differences.map { difference in
            "{\"kind\":\(JSONText.string(difference.kind)),\"route\":\((difference.new.route ?? difference.old.route ?? difference.probe.route).map(JSONText.string) ?? "null"),"
                + "\"method\":\(JSONText.string(difference.probe.method)),\"target\":\(JSONText.string(difference.probe.target)),"
                + "\"host\":\(difference.probe.host.map(JSONText.string) ?? "null"),\"probe\":\(JSONText.string(difference.probe.label)),"
                + "\"old\":\(answer(difference.old)),\"new\":\(answer(difference.new))}"
        }
        return "{\"probes\":\(probes),\"different\":\(differences.count),\"differences\":[\(items.joined(separator: ","))]}"
    }
}

/// The process environment, with a stand-in for any secret variable that is not set.
struct PlaceholderSecrets: ConfigEnvironment {
    let base: ProcessConfigEnvironment

    func variable(_ name: String) -> String? {
        self.base.variable(name) ?? String(repeating: "diff-placeholder-secret-", count: 3)
    }

    func readFile(_ path: String) throws(FileReadError) -> [UInt8] { try self.base.readFile(path) }
    func resolve(_ path: String) -> String { self.base.resolve(path) }
}
