/// One finding about a configuration file: an error that makes it unusable, or a warning.
///
/// Messages never contain secret values: they name the environment variable or file instead.
package struct ConfigDiagnostic: Error, Hashable, Sendable, CustomStringConvertible {
    package enum Severity: String, Hashable, Sendable {
        case error
        case warning
    }

    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case syntax, missingKey, unknownKey, wrongType, badValue, duplicateName, unknownReference
            case unreadableFile, shadowedRoute, unsupported
        }
        private let base: Base
        package static let syntax = Code(base: .syntax)
        package static let missingKey = Code(base: .missingKey)
        package static let unknownKey = Code(base: .unknownKey)
        package static let wrongType = Code(base: .wrongType)
        package static let badValue = Code(base: .badValue)
        package static let duplicateName = Code(base: .duplicateName)
        package static let unknownReference = Code(base: .unknownReference)
        package static let unreadableFile = Code(base: .unreadableFile)
        package static let shadowedRoute = Code(base: .shadowedRoute)
        package static let unsupported = Code(base: .unsupported)
        package var description: String { self.base.rawValue }
    }

    package var severity: Severity
    package var code: Code
    package var location: SourceLocation
    package var message: String

    package init(_ severity: Severity = .error, _ code: Code, at location: SourceLocation, _ message: String) {
        self.severity = severity
        self.code = code
        self.location = location
        self.message = message
    }

    /// The exact form `portcullis validate` prints: `FILE:LINE:COL: error: MESSAGE`.
    package var description: String { "\(self.location): \(self.severity.rawValue): \(self.message)" }
}

/// Every finding of one load, errors and warnings, in file order.
package struct ConfigDiagnostics: Error, Sendable, CustomStringConvertible {
    package var all: [ConfigDiagnostic] = []

    package init(_ all: [ConfigDiagnostic] = []) { self.all = all }

    package var errors: [ConfigDiagnostic] { self.sorted.filter { $0.severity == .error } }
    package var warnings: [ConfigDiagnostic] { self.sorted.filter { $0.severity == .warning } }
    package var hasErrors: Bool { self.all.contains { $0.severity == .error } }

    /// At most this many findings are kept, and each message at most ``messageLimit``
    /// characters: a small file with YAML aliases can repeat a long value thousands of times,
    /// and its report must stay small (it is also what a failed reload logs).
    package static let limit = 200
    package static let messageLimit = 300
    private var overflowed = false

    package mutating func append(_ diagnostic: ConfigDiagnostic) {
        var diagnostic = diagnostic
        if diagnostic.message.count > Self.messageLimit {
            diagnostic.message = String(diagnostic.message.prefix(Self.messageLimit)) + "…"
        }
        guard self.all.count < Self.limit else {
            if !self.overflowed {
                self.overflowed = true
                diagnostic.message = "more problems follow; only the first \(Self.limit) are reported"
                self.all.append(diagnostic)
            } else if diagnostic.severity == .error, let last = self.all.indices.last {
                self.all[last].severity = .error  // the file is invalid whatever was shown
            }
            return
        }
        self.all.append(diagnostic)
    }

    package var sorted: [ConfigDiagnostic] {
        self.all.sorted {
            ($0.location.file, $0.location.line, $0.location.column) < ($1.location.file, $1.location.line, $1.location.column)
        }
    }

    package var description: String { self.sorted.map(\.description).joined(separator: "\n") }
}
