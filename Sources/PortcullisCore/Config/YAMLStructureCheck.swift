internal import CYaml

/// A pass over the YAML event stream, before the tree is built, that refuses what a
/// configuration never needs and what could make it mean something else than it says:
///
/// - a key that is not a plain string (an alias, a list, a mapping): the composer hashes such
///   keys to find duplicates, and an alias of nested aliases expands exponentially, so a few
///   hundred bytes would keep a start-up or a reload busy for hours;
/// - a tag (`!!binary`, `!x`) anywhere other than `!!str` on a scalar: the readers take every
///   value as text, so a tag would be ignored, and a tagged repeat of a key would not count as a
///   repeat and would replace the first;
/// - a key given twice in one mapping, reported where it is repeated.
///
/// Events carry anchors and aliases unexpanded, so the pass is linear in the size of the text.
enum YAMLStructureCheck {
    private enum Frame {
        case sequence
        case mapping(expectingKey: Bool, keys: [String: Int])
    }

    /// The problems found, each at its place; an unreadable or malformed stream is reported as a
    /// syntax error and ends the pass.
    static func problems(in text: String, file: String) -> [ConfigDiagnostic] {
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        return bytes.withUnsafeBufferPointer { buffer in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else {
                return [ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: file, line: 1, column: 1), "out of memory")]
            }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return self.scan(&parser, bytes: buffer, file: file)
        }
    }

    private static func scan(_ parser: inout yaml_parser_t, bytes: UnsafeBufferPointer<UInt8>, file: String) -> [ConfigDiagnostic] {
        var problems: [ConfigDiagnostic] = []
        var stack: [Frame] = []
        func at(_ mark: yaml_mark_t) -> SourceLocation {
            SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
        }
        func refuseTag(_ tag: UnsafeMutablePointer<yaml_char_t>?, allowed: String, _ mark: yaml_mark_t) {
            guard let tag else { return }
            let name = String(cString: tag)
            guard name != allowed else { return }
            let shown = name.hasPrefix("tag:yaml.org,2002:") ? "!!" + name.dropFirst(18) : name
            problems.append(ConfigDiagnostic(.error, .syntax, at: at(mark), "YAML tags such as '\(shown)' are not accepted here"))
        }
        /// Records that a node was completed in the current container, and checks keys.
        func completeNode(key: String?, _ mark: yaml_mark_t, isScalar: Bool) {
            guard case .mapping(let expectingKey, var keys) = stack.last else { return }
            if expectingKey {
                if !isScalar {
                    problems.append(ConfigDiagnostic(.error, .syntax, at: at(mark), "mapping keys must be plain strings"))
                } else if let key {
                    if let first = keys[key] {
                        problems.append(
                            ConfigDiagnostic(.error, .syntax, at: at(mark), "duplicate key '\(key)' in a mapping (first at line \(first))"))
                    } else {
                        keys[key] = Int(mark.line) + 1
                    }
                }
            }
            stack[stack.count - 1] = .mapping(expectingKey: !expectingKey, keys: keys)
        }
        /// Whether the next node starts in a key position.
        var inKeyPosition: Bool {
            if case .mapping(true, _) = stack.last { return true }
            return false
        }

        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                problems.append(self.syntaxProblem(parser, bytes: bytes, file: file))
                return problems
            }
            defer { yaml_event_delete(&event) }
            let mark = event.start_mark
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return problems
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                refuseTag(scalar.tag, allowed: "tag:yaml.org,2002:str", mark)
                let key = inKeyPosition ? String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self) : nil
                completeNode(key: key, mark, isScalar: true)
            case YAML_ALIAS_EVENT:
                completeNode(key: nil, mark, isScalar: !inKeyPosition)
            case YAML_SEQUENCE_START_EVENT:
                refuseTag(event.data.sequence_start.tag, allowed: "tag:yaml.org,2002:seq", mark)
                if inKeyPosition { problems.append(ConfigDiagnostic(.error, .syntax, at: at(mark), "mapping keys must be plain strings")) }
                stack.append(.sequence)
            case YAML_MAPPING_START_EVENT:
                refuseTag(event.data.mapping_start.tag, allowed: "tag:yaml.org,2002:map", mark)
                if inKeyPosition { problems.append(ConfigDiagnostic(.error, .syntax, at: at(mark), "mapping keys must be plain strings")) }
                stack.append(.mapping(expectingKey: true, keys: [:]))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                stack.removeLast()
                // The container was a value (a key container is already reported): flip the parent.
                if case .mapping(let expectingKey, let keys) = stack.last {
                    stack[stack.count - 1] = .mapping(expectingKey: !expectingKey, keys: keys)
                }
            default:
                break  // stream and document boundaries
            }
        }
    }

    private static func syntaxProblem(_ parser: yaml_parser_t, bytes: UnsafeBufferPointer<UInt8>, file: String) -> ConfigDiagnostic {
        let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
        if parser.error == YAML_READER_ERROR {
            // Reader errors (invalid UTF-8, control characters) carry a byte offset, not a mark.
            let offset = min(Int(parser.problem_offset), bytes.count)
            var line = 1
            var lineStart = 0
            for index in 0..<offset where bytes[index] == UInt8(ascii: "\n") {
                line += 1
                lineStart = index + 1
            }
            let column = String(decoding: UnsafeBufferPointer(rebasing: bytes[lineStart..<offset]), as: UTF8.self).unicodeScalars.count + 1
            return ConfigDiagnostic(.error, .syntax, at: SourceLocation(file: file, line: line, column: column), "unreadable YAML: \(problem)")
        }
        let mark = parser.problem_mark
        return ConfigDiagnostic(
            .error, .syntax, at: SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1), "YAML syntax: \(problem)")
    }
}
