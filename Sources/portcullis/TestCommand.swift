import ArgumentParser
import Foundation
import PortcullisCore
import PortcullisServer

struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Dry-run a file of request cases with expectations against the policy.",
        discussion: """
            Prints one line per case and 'N passed, N failed' last. With --coverage, also prints which \
            outcomes of each route (allow, 401, 403) the cases reached. Exit status: 0 all pass, 1 a case \
            failed or the coverage is below --min-coverage, 2 error.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Also write the results as JUnit XML to FILE.")
    var junit: String?

    @Flag(name: .long, help: "Print which outcomes of each route (allow, 401, 403) the cases reached.")
    var coverage = false

    @Option(
        name: .long,
        help: ArgumentHelp("Exit 1 when the coverage is below PCT percent (implies --coverage).", valueName: "PCT"))
    var minCoverage: Double?

    @Flag(name: .long, help: "Print the results as one JSON object.")
    var json = false

    @Argument(help: "Case files (YAML with a top-level 'cases' list).")
    var files: [String]

    func validate() throws {
        guard !self.files.isEmpty else { throw ValidationError("give at least one case file") }
        if let minimum = self.minCoverage, !(0...100).contains(minimum) {
            throw ValidationError("--min-coverage must be a percentage from 0 to 100")
        }
    }

    func run() throws {
        let loaded = self.options.load()
        guard let config = loaded.config else {
            for diagnostic in loaded.diagnostics.errors { printError(diagnostic.description) }
            throw ExitCode(2)
        }
        let policy = Policy(config: config)
        var results: [(file: String, results: [PolicyCaseResult])] = []
        var errors = false
        for file in self.files {
            let text: String
            do {
                guard let valid = String(validating: try BoundedFile.read(file), as: UTF8.self) else {
                    printError("\(file):1:1: error: the case file is not valid UTF-8")
                    errors = true
                    continue
                }
                text = valid
            } catch {
                printError("\(file):1:1: error: cannot read the case file: \(error)")
                errors = true
                continue
            }
            let cases = PolicyCaseLoader.load(text: text, file: file, environment: ProcessConfigEnvironment(configFile: file))
            for diagnostic in cases.diagnostics.sorted { printError(diagnostic.description) }
            if cases.diagnostics.hasErrors {
                errors = true
                continue
            }
            let now = WallClock.now()
            results.append((file, cases.cases.map { $0.run(policy, now: now) }))
        }
        if errors { throw ExitCode(2) }
        let coverage =
            self.coverage || self.minCoverage != nil
            ? PolicyCoverage(routes: policy.routes.map(\.config), reaches: results.flatMap(\.results).compactMap(\.reached)) : nil
        let report = PolicyTestReport(files: results, coverage: coverage, minimum: self.minCoverage)
        if !self.json {
            for line in report.textLines { printOut(line) }
        }
        var junitFailed = false
        if let junit = self.junit {
            do {
                try JUnitWriter.xml(results, coverage: coverage).write(toFile: junit, atomically: true, encoding: .utf8)
            } catch {
                printError("\(junit): error: cannot write the JUnit report: \((error as NSError).localizedDescription)")
                junitFailed = true
            }
        }
        printOut(self.json ? report.json : report.summary)
        if let coverage, let minimum = self.minCoverage, report.belowMinimum {
            printError(
                "coverage \(coverage.percentText)% (\(coverage.covered) of \(coverage.total) outcomes) is below the minimum of "
                    + "\(PolicyTestReport.number(minimum))%")
        }
        if junitFailed { throw ExitCode(2) }
        if report.failed > 0 || report.belowMinimum { throw ExitCode(1) }
    }
}

/// JUnit XML for CI systems: one test suite per case file, and with coverage a `coverage`
/// suite holding one skipped test case per outcome no case reached.
enum JUnitWriter {
    static func xml(_ files: [(file: String, results: [PolicyCaseResult])], coverage: PolicyCoverage? = nil) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"portcullis policy tests\">\n"
        for (file, results) in files {
            let failures = results.filter { !$0.passed }.count
            out += "  <testsuite name=\"\(escape(file))\" tests=\"\(results.count)\" failures=\"\(failures)\" errors=\"0\""
            out += " skipped=\"0\">\n"
            for result in results {
                out += "    <testcase name=\"\(escape(result.name))\" classname=\"\(escape(file))\""
                if result.passed {
                    out += "/>\n"
                } else {
                    let message = result.failures.joined(separator: "; ")
                    out += ">\n      <failure message=\"\(escape(message))\">\(escape(result.location.fileAndLine + ": " + message))</failure>\n    </testcase>\n"
                }
            }
            out += "  </testsuite>\n"
        }
        if let coverage {
            let uncovered = coverage.routes.flatMap { route in route.unreached.map { (route, $0) } }
            out += "  <testsuite name=\"coverage\" tests=\"\(uncovered.count)\" failures=\"0\" errors=\"0\""
            out += " skipped=\"\(uncovered.count)\">\n"
            for (route, outcome) in uncovered {
                let message =
                    "no case reached the \(outcome.rawValue) outcome of route '\(route.name)' (\(route.location.fileAndLine))"
                out += "    <testcase name=\"\(escape("coverage: \(route.name) \(outcome.rawValue)"))\" classname=\"coverage\">\n"
                out += "      <skipped message=\"\(escape(message))\"/>\n    </testcase>\n"
            }
            out += "  </testsuite>\n"
        }
        return out + "</testsuites>\n"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // XML 1.0 forbids most control characters even when escaped.
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" && scalar != "\r" { out += "?" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }
}
