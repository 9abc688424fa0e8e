/// Where a configuration's secrets and key files come from. The CLI and the server read the
/// real environment and files; tests pass values in directly.
package protocol ConfigEnvironment: Sendable {
    /// The value of an environment variable, or `nil` when unset.
    func variable(_ name: String) -> String?
    /// The bytes of a file, or `nil` when it cannot be read. `path` is already resolved.
    func readFile(_ path: String) -> [UInt8]?
    /// `path` resolved against the configuration file's folder when relative.
    func resolve(_ path: String) -> String
}

/// An environment with fixed values, for tests and for `check` cases.
package struct FixedEnvironment: ConfigEnvironment {
    package var variables: [String: String]
    package var files: [String: [UInt8]]

    package init(variables: [String: String] = [:], files: [String: [UInt8]] = [:]) {
        self.variables = variables
        self.files = files
    }

    package func variable(_ name: String) -> String? { self.variables[name] }
    package func readFile(_ path: String) -> [UInt8]? { self.files[path] }
    package func resolve(_ path: String) -> String { path }
}
