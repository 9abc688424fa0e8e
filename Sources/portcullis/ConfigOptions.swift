import ArgumentParser
import Foundation
import PortcullisCore
import PortcullisServer

/// `--config PATH`, shared by every command that reads a configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file (default: $PORTCULLIS_CONFIG, then ./routes.yaml).")
    var config: String?

    var path: String {
        if let config { return config }
        if let fromEnvironment = ProcessInfo.processInfo.environment["PORTCULLIS_CONFIG"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return "routes.yaml"
    }

    /// Reads and checks the file. Every diagnostic is in the result; the caller prints them.
    func load() -> ConfigLoader.Result {
        self.load(environment: ProcessConfigEnvironment(configFile: self.path))
    }

    /// Reads and checks the file with secrets and key files from `environment`.
    func load(environment: any ConfigEnvironment) -> ConfigLoader.Result {
        let path = self.path
        let data: [UInt8]
        do {
            data = try BoundedFile.read(path)
        } catch {
            return ConfigLoader.Result(
                config: nil,
                diagnostics: ConfigDiagnostics([
                    ConfigDiagnostic(.error, .unreadableFile, at: SourceLocation(file: path, line: 1, column: 1), "cannot read the file: \(error)")
                ]))
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            return ConfigLoader.Result(
                config: nil,
                diagnostics: ConfigDiagnostics([
                    ConfigDiagnostic(
                        .error, .syntax, at: SourceLocation(file: path, line: 1, column: 1), "the file is not valid UTF-8")
                ]))
        }
        // Relative paths in the file are resolved by the loader, through `environment`.
        return ConfigLoader.load(text: text, file: path, environment: environment)
    }
}
