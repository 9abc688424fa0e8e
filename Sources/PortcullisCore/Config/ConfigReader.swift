internal import Yams

/// Reads a composed YAML tree into typed values and records every problem, with its place,
/// instead of stopping at the first.
///
/// Every scalar arrives as text (the tree is composed with `Resolver.basic`), so YAML 1.1's
/// `no`/`on`/`yes` never turn into booleans behind the operator's back: these readers decide
/// what each field accepts.
final class ConfigReader {
    let file: String
    /// Secrets and named files; also resolves relative paths against the file's folder.
    let environment: any ConfigEnvironment
    private(set) var diagnostics = ConfigDiagnostics()
    /// Errors found so far, including any beyond the limit ``ConfigDiagnostics`` keeps.
    private(set) var errorCount = 0

    init(file: String, environment: any ConfigEnvironment = FixedEnvironment()) {
        self.file = file
        self.environment = environment
    }

    /// The one place a path written in the configuration becomes the path the gateway opens:
    /// relative paths are taken from the configuration file's folder.
    func resolve(_ path: String) -> String { self.environment.resolve(path) }

    func location(_ node: Node) -> SourceLocation {
        SourceLocation(file: self.file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
    }

    func error(_ code: ConfigDiagnostic.Code, _ node: Node, _ message: String) {
        self.errorCount += 1
        self.diagnostics.append(ConfigDiagnostic(.error, code, at: self.location(node), message))
    }

    func warning(_ code: ConfigDiagnostic.Code, _ node: Node, _ message: String) {
        self.diagnostics.append(ConfigDiagnostic(.warning, code, at: self.location(node), message))
    }

    func add(_ diagnostic: ConfigDiagnostic) {
        if diagnostic.severity == .error { self.errorCount += 1 }
        self.diagnostics.append(diagnostic)
    }

    /// Opens a mapping and reports each key outside `keys` at the key's own place.
    func mapping(_ node: Node, _ what: String, keys: [String]) -> ConfigFields? {
        guard case .mapping(let mapping) = node else {
            self.error(.wrongType, node, "\(what) must be a mapping, found \(describe(node))")
            return nil
        }
        var entries: [String: (key: Node, value: Node)] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                self.error(.wrongType, keyNode, "keys in \(what) must be plain strings")
                continue
            }
            if keys.contains(key.string) {
                entries[key.string] = (keyNode, value)
            } else {
                var message = "unknown key '\(key.string)' in \(what)"
                if let suggestion = closestMatch(key.string, in: keys) {
                    message += "; did you mean '\(suggestion)'?"
                }
                self.error(.unknownKey, keyNode, message)
            }
        }
        return ConfigFields(reader: self, node: node, name: what, entries: entries)
    }

    func sequence(_ node: Node, _ what: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            self.error(.wrongType, node, "\(what) must be a list, found \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    func string(_ node: Node, _ what: String, allowEmpty: Bool = false) -> String? {
        guard case .scalar(let scalar) = node, !isNull(node) || scalar.style != .plain else {
            self.error(.wrongType, node, "\(what) must be a string, found \(describe(node))")
            return nil
        }
        if !allowEmpty && scalar.string.isEmpty {
            self.error(.badValue, node, "\(what) must not be empty")
            return nil
        }
        return scalar.string
    }

    func bool(_ node: Node, _ what: String) -> Bool? {
        if case .scalar(let scalar) = node, scalar.style == .plain {
            switch scalar.string {
            case "true": return true
            case "false": return false
            default: break
            }
        }
        self.error(.wrongType, node, "\(what) must be true or false, found \(describe(node))")
        return nil
    }

    func integer(_ node: Node, _ what: String, range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Int(scalar.string) else {
            self.error(.wrongType, node, "\(what) must be an integer, found \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            self.error(.badValue, node, "\(what) must be between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        return value
    }

    func duration(_ node: Node, _ what: String, allowZero: Bool = false) -> Milliseconds? {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            self.error(.wrongType, node, "\(what) must be a duration such as 250ms, 30s, 5m, 2h or 14d")
            return nil
        }
        guard let value = ScalarParsers.duration(scalar.string) else {
            self.error(.badValue, node, "\(what): '\(scalar.string)' is not a duration (use 250ms, 30s, 5m, 2h or 14d)")
            return nil
        }
        if value == 0 && !allowZero {
            self.error(.badValue, node, "\(what) must be greater than zero")
            return nil
        }
        if value > ScalarParsers.maximumDuration {
            self.error(.badValue, node, "\(what): '\(scalar.string)' is longer than the largest accepted duration, 3650d")
            return nil
        }
        return value
    }

    func size(_ node: Node, _ what: String) -> Int? {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            self.error(.wrongType, node, "\(what) must be a size such as 512KiB, 10MiB or a byte count")
            return nil
        }
        guard let value = ScalarParsers.size(scalar.string) else {
            self.error(.badValue, node, "\(what): '\(scalar.string)' is not a size (use 512KiB, 10MiB, 1GiB or a byte count)")
            return nil
        }
        if value > ScalarParsers.maximumSize {
            self.error(.badValue, node, "\(what): '\(scalar.string)' is larger than the largest accepted size, 1024GiB")
            return nil
        }
        return value
    }

    func stringList(_ node: Node, _ what: String) -> [(String, Node)]? {
        guard let items = self.sequence(node, what) else { return nil }
        var result: [(String, Node)] = []
        for item in items {
            if let value = self.string(item, "each entry of \(what)") { result.append((value, item)) }
        }
        return result
    }
}

func isNull(_ node: Node) -> Bool {
    guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
    return scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" || scalar.string == "Null"
        || scalar.string == "NULL"
}

func describe(_ node: Node) -> String {
    switch node {
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    case .alias: return "an alias"
    case .scalar:
        // Never the value itself: a file named by mistake (a secret file as users_file) would
        // have its content printed.
        return isNull(node) ? "nothing" : "a string"
    }
}

/// The allowed key closest to a misspelt one, when it is close enough to be a likely typo.
func closestMatch(_ word: String, in candidates: [String]) -> String? {
    var best: (String, Int)?
    // In name order, so that of equally close names (a dictionary's keys) the same one wins
    // every time.
    for candidate in candidates.sorted() {
        let distance = editDistance(Array(word.lowercased().utf8), Array(candidate.utf8))
        if distance <= max(1, candidate.count / 3), distance < (best?.1 ?? Int.max) {
            best = (candidate, distance)
        }
    }
    return best?.0
}

private func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
