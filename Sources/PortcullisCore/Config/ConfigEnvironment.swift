/// Where a configuration's secrets and key files come from. The CLI and the server read the
/// real environment and files; tests pass values in directly.
package protocol ConfigEnvironment: Sendable {
    /// The value of an environment variable, or `nil` when unset.
    func variable(_ name: String) -> String?
    /// The bytes of a file. `path` is already resolved.
    func readFile(_ path: String) throws(FileReadError) -> [UInt8]
    /// `path` resolved against the configuration file's folder when relative.
    func resolve(_ path: String) -> String
    /// Why a file the gateway appends to (the access log) could not be opened for writing, or
    /// `nil`. `path` is already resolved.
    func problemAppending(to path: String) -> String?
}

extension ConfigEnvironment {
    package func problemAppending(to path: String) -> String? { nil }
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
    package func readFile(_ path: String) throws(FileReadError) -> [UInt8] {
        guard let bytes = self.files[path] else { throw FileReadError("no such file") }
        return bytes
    }
    package func resolve(_ path: String) -> String { path }
}

/// Why a file named by the configuration could not be read: "no such file", "not a regular
/// file", "larger than 64 MiB".
package struct FileReadError: Error, CustomStringConvertible, Sendable {
    package var description: String
    package init(_ description: String) { self.description = description }
}
