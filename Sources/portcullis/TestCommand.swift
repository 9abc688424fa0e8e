import ArgumentParser
import Foundation
import PortcullisCore
import PortcullisServer

struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Dry-run a file of request cases with expectations against the policy.",
        discussion: "Prints one line per case and 'N passed, N failed' last. Exit status: 0 all pass, 1 a case failed, 2 error.")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Also write the results as JUnit XML to FILE.")
    var junit: String?

    @Argument(help: "Case files (YAML with a top-level 'cases' list).")
    var files: [String]

    func run() throws {
        guard !self.files.isEmpty else { throw ValidationError("give at least one case file") }
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
        var passed = 0
        var failed = 0
        for (_, fileResults) in results {
            for result in fileResults {
                if result.passed {
                    passed += 1
                    printOut("PASS  \(result.name)")
                } else {
                    failed += 1
                    printOut("FAIL  \(result.name) (\(result.location.fileAndLine)): " + result.failures.joined(separator: "; "))
                }
            }
        }
        var junitFailed = false
        if let junit = self.junit {
            do {
                try JUnitWriter.xml(results).write(toFile: junit, atomically: true, encoding: .utf8)
            } catch {
                printError("\(junit): error: cannot write the JUnit report: \((error as NSError).localizedDescription)")
                junitFailed = true
            }
        }
        printOut("\(passed) passed, \(failed) failed")
        if junitFailed { throw ExitCode(2) }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// JUnit XML for CI systems: one test suite per case file.
enum JUnitWriter {
    static func xml(_ files: [(file: String, results: [PolicyCaseResult])]) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"portcullis policy tests\">\n"
        for (file, results) in files {
            let failures = results.filter { !$0.passed }.count
            out += "  <testsuite name=\"\(escape(file))\" tests=\"\(results.count)\" failures=\"\(failures)\" errors=\"0\">\n"
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
