internal import Yams

/// Turns the text of a `routes.yaml` into a validated ``GatewayConfig``.
///
/// Pure: the caller reads the file. Every problem is collected with its `FILE:LINE:COL`;
/// a file with any error yields no config at all, so a typo can never weaken a rule.
///
/// Loading has two passes. First each section reader (`ConfigLoader+Server.swift` and its
/// neighbours) reads its own top-level section through ``ConfigFields``, checking what that
/// section can check alone; relative file names are resolved as they are read, by
/// ``ConfigReader/resolve(_:)``. Then ``ConfigValidator`` runs every check that needs more than
/// one section: listeners that would share a port, names one section gives for another's
/// entries, the token endpoint's own tokens, TLS certificates against their keys, and routes
/// against each other.
package enum ConfigLoader {
    package struct Result: Sendable {
        /// `nil` when ``diagnostics`` has errors.
        package var config: GatewayConfig?
        package var diagnostics: ConfigDiagnostics

        package init(config: GatewayConfig?, diagnostics: ConfigDiagnostics) {
            self.config = config
            self.diagnostics = diagnostics
        }
    }

    static let topLevelKeys = [
        "version", "server", "jwt", "users", "users_file", "api_keys", "token_endpoint", "upstreams", "routes",
        "decisions",
    ]

    /// The text without a leading UTF-8 byte-order mark, which YAML allows and Windows editors
    /// write; the parser would take it for content.
    static func withoutByteOrderMark(_ text: String) -> String {
        text.unicodeScalars.first == "\u{FEFF}" ? String(text.unicodeScalars.dropFirst()) : text
    }

    package static func load(text: String, file: String, environment: any ConfigEnvironment = FixedEnvironment()) -> Result {
        let reader = ConfigReader(file: file, environment: environment)
        guard let root = self.compose(text, reader) else { return Result(config: nil, diagnostics: reader.diagnostics) }
        var config: GatewayConfig?
        if let sections = self.readSections(root, reader) {
            config = ConfigValidator.validate(sections, reader)
        }
        let diagnostics = reader.diagnostics
        return Result(config: diagnostics.hasErrors ? nil : config, diagnostics: diagnostics)
    }

    /// The tree of a YAML file, or nil with the problems recorded in `reader`: the structure
    /// check runs first, so the composer never sees a key it could not handle quickly.
    static func compose(_ text: String, _ reader: ConfigReader) -> Node? {
        let problems = YAMLStructureCheck.problems(in: text, file: reader.file)
        guard problems.isEmpty else {
            for problem in problems { reader.add(problem) }
            return nil
        }
        do {
            guard let root = try Yams.compose(yaml: ConfigLoader.withoutByteOrderMark(text), .basic) else {
                reader.add(ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: reader.file, line: 1, column: 1), "the file is empty"))
                return nil
            }
            return root
        } catch let error as YamlError {
            reader.add(syntaxDiagnostic(error, file: reader.file))
        } catch {
            reader.add(ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: reader.file, line: 1, column: 1), "\(error)"))
        }
        return nil
    }

    /// The first pass: every section as written, each read on its own.
    private static func readSections(_ root: Node, _ reader: ConfigReader) -> ConfigSections? {
        guard let top = reader.mapping(root, "the configuration", keys: self.topLevelKeys) else { return nil }
        var sections = ConfigSections(top: top)
        sections.reading(.top, reader) { self.readVersion(top) }
        if let node = top["server"] {
            sections.server = sections.reading(.server, reader) { self.readServer(node, reader) }
        }
        if let node = top["decisions"] {
            sections.decisions = sections.reading(.decisions, reader) { self.readDecisions(node, reader) }
        }
        if let node = top["jwt"] {
            sections.jwt = sections.reading(.jwt, reader) { self.readJWT(node, reader) }
        }
        if let node = top["users"] {
            sections.users = sections.reading(.users, reader) { self.readUsers(node, reader) }
        }
        // `merge_slashes` decides what a path means, so sections that hold paths are read with it.
        let mergeSlashes = sections.server.config.mergeSlashes
        if let node = top["token_endpoint"] {
            sections.tokenEndpoint = sections.reading(.tokenEndpoint, reader) {
                self.readTokenEndpoint(node, mergeSlashes: mergeSlashes, reader)
            }
        }
        if let node = top["api_keys"] { sections.apiKeys = self.readAPIKeys(node, reader) }
        if let node = top["users_file"] {
            if top.has("users") {
                reader.error(.badValue, top.keyNode("users_file") ?? node, "give users or users_file, not both")
            } else if let path = top.path("users_file", "users_file") {
                sections.users = self.readUsersFile(path, reader)
            }
        }
        if let node = top["upstreams"] { sections.upstreams = self.readUpstreams(node, reader) }
        if let node = top["routes"] { sections.routes = self.readRoutes(node, mergeSlashes: mergeSlashes, reader) }
        return sections
    }

    private static func readVersion(_ top: ConfigFields) {
        guard let version = top.required("version") else { return }
        if case .scalar(let scalar) = version, scalar.string == "1", scalar.style == .plain {
        } else if case .scalar(let scalar) = version, scalar.string.count <= 8, scalar.style == .plain {
            top.reader.error(.badValue, version, "unsupported configuration version \(scalar.string); expected 1")
        } else {
            top.reader.error(.badValue, version, "the configuration version must be the number 1")
        }
    }

    private static func syntaxDiagnostic(_ error: YamlError, file: String) -> ConfigDiagnostic {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigDiagnostic(.error, .syntax, at: at(mark), "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // The structure check reports repeats first; this is what the composer still finds.
            return ConfigDiagnostic(.error, .syntax, at: at(context.mark), "duplicate key '\(duplicates.first ?? "?")' in a mapping")
        case .reader(let problem, _, _, _):
            return ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: file, line: 1, column: 1), "unreadable YAML: \(problem)")
        default:
            return ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: file, line: 1, column: 1), "YAML: \(error)")
        }
    }
}
