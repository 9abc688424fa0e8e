import ArgumentParser
import PortcullisCore

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load and check a configuration; print errors and warnings as FILE:LINE:COL.")

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Print the findings as one JSON object.")
    var json = false

    func run() throws {
        let result = self.options.load()
        let diagnostics = result.diagnostics.sorted
        if self.json {
            let items = diagnostics.map { diagnostic in
                "{\"file\":\(JSONText.string(diagnostic.location.file)),\"line\":\(diagnostic.location.line),"
                    + "\"column\":\(diagnostic.location.column),\"severity\":\"\(diagnostic.severity.rawValue)\","
                    + "\"code\":\"\(diagnostic.code)\",\"message\":\(JSONText.string(diagnostic.message))}"
            }
            printOut("{\"valid\":\(result.config != nil),\"diagnostics\":[\(items.joined(separator: ","))]}")
        } else {
            for diagnostic in diagnostics { printError(diagnostic.description) }
            if let config = result.config {
                printOut("\(self.options.path): valid (\(config.routes.count) routes, \(config.upstreams.count) upstreams)")
            }
        }
        if result.config == nil { throw ExitCode(2) }
    }
}
