import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct Portcullis: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portcullis",
        abstract: "A reverse-proxy authentication gateway.",
        subcommands: [
            Serve.self, Validate.self, Check.self, TestCommand.self, Diff.self, HashPassword.self, Token.self, Version.self,
        ])

    /// ArgumentParser reports usage errors as EX_USAGE (64); the contract says 2.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Writes a line to standard output, unbuffered.
func printOut(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
}
