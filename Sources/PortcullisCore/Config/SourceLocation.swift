/// A place in a configuration file, 1-based, as `FILE:LINE:COL`.
package struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    package var file: String
    package var line: Int
    package var column: Int

    package init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    package var description: String { "\(self.file):\(self.line):\(self.column)" }

    /// `FILE:LINE`, the form the dry-run trace uses for a route.
    package var fileAndLine: String { "\(self.file):\(self.line)" }
}
