import PortcullisCore

/// What `portcullis test` prints: the case lines, the coverage block when asked for, and the
/// summary line last; or all of it as one JSON object.
struct PolicyTestReport {
    let files: [(file: String, results: [PolicyCaseResult])]
    let coverage: PolicyCoverage?
    /// The `--min-coverage` figure, when given.
    let minimum: Double?

    var results: [PolicyCaseResult] { self.files.flatMap(\.results) }
    var passed: Int { self.results.filter(\.passed).count }
    var failed: Int { self.results.count - self.passed }
    var summary: String { "\(self.passed) passed, \(self.failed) failed" }

    /// Whether the coverage falls short of `--min-coverage`.
    var belowMinimum: Bool {
        guard let coverage = self.coverage, let minimum = self.minimum else { return false }
        return !coverage.meets(minimum)
    }

    /// Every line but the summary, which the caller prints last.
    var textLines: [String] {
        var lines = self.results.map { result in
            result.passed
                ? "PASS  \(result.name)"
                : "FAIL  \(result.name) (\(result.location.fileAndLine)): " + result.failures.joined(separator: "; ")
        }
        if let coverage = self.coverage { lines += Self.coverageLines(coverage) }
        return lines
    }

    /// One aligned line per route, then `coverage: N of M outcomes (P%)`.
    static func coverageLines(_ coverage: PolicyCoverage) -> [String] {
        func list(_ outcomes: [PolicyCoverage.Outcome]) -> String {
            outcomes.isEmpty ? "-" : outcomes.map(\.rawValue).joined(separator: " ")
        }
        let rows = coverage.routes.map { route in
            (
                name: route.name, location: route.location.fileAndLine, reached: list(route.reached),
                unreached: list(route.unreached)
            )
        }
        let nameWidth = rows.map(\.name.count).max() ?? 0
        let locationWidth = rows.map(\.location.count).max() ?? 0
        let reachedWidth = rows.map(\.reached.count).max() ?? 0
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
        var lines = ["coverage per route (outcomes allow, 401, 403):"]
        for row in rows {
            lines.append(
                "  \(pad(row.name, nameWidth))  \(pad(row.location, locationWidth))"
                    + "  reached: \(pad(row.reached, reachedWidth))  not reached: \(row.unreached)")
        }
        lines.append("coverage: \(coverage.covered) of \(coverage.total) outcomes (\(coverage.percentText)%)")
        return lines
    }

    /// The whole report as one JSON object.
    var json: String {
        func strings(_ items: [String]) -> String { "[" + items.map(JSONText.string).joined(separator: ",") + "]" }
        let cases = self.files.flatMap { file, results in
            results.map { result in
                "{\"name\":\(JSONText.string(result.name)),\"file\":\(JSONText.string(file)),\"line\":\(result.location.line),"
                    + "\"passed\":\(result.passed),\"failures\":\(strings(result.failures))}"
            }
        }
        var fields = [
            ("cases", "[" + cases.joined(separator: ",") + "]"), ("passed", String(self.passed)), ("failed", String(self.failed)),
        ]
        if let coverage = self.coverage {
            let routes = coverage.routes.map { route in
                "{\"name\":\(JSONText.string(route.name)),\"file\":\(JSONText.string(route.location.file)),"
                    + "\"line\":\(route.location.line),\"outcomes\":\(strings(route.outcomes.map(\.rawValue))),"
                    + "\"reached\":\(strings(route.reached.map(\.rawValue))),"
                    + "\"unreached\":\(strings(route.unreached.map(\.rawValue)))}"
            }
            var members = [
                ("routes", "[" + routes.joined(separator: ",") + "]"), ("covered", String(coverage.covered)),
                ("total", String(coverage.total)), ("percent", coverage.percentText),
            ]
            if let minimum = self.minimum {
                members.append(("min_coverage", Self.number(minimum)))
                members.append(("meets_minimum", String(!self.belowMinimum)))
            }
            fields.append(("coverage", Self.object(members)))
        }
        return Self.object(fields)
    }

    /// `90` rather than `90.0` for whole numbers.
    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    private static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { "\(JSONText.string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }
}
