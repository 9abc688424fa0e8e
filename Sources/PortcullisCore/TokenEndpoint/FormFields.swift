/// The fields of a token request body: `application/x-www-form-urlencoded` or
/// `multipart/form-data` (what `curl -F` sends). A field may appear only once (RFC 6749 §3.2).
package struct FormFields: Sendable {
    package private(set) var values: [String: String] = [:]

    package subscript(_ name: String) -> String? { self.values[name] }

    private mutating func add(_ name: String, _ value: String) throws(OAuthError) {
        guard self.values.updateValue(value, forKey: name) == nil else {
            throw .invalidRequest("The parameter \(name) appears more than once")
        }
    }

    /// Parses `body` according to its `Content-Type`.
    package static func parse(contentType: String?, body: [UInt8]) throws(OAuthError) -> FormFields {
        guard let contentType else { throw .invalidRequest("Missing Content-Type") }
        let parts = contentType.split(separator: ";").map { $0.trimmingSpaces() }
        let mediaType = parts.first?.lowercased() ?? ""
        switch mediaType {
        case "application/x-www-form-urlencoded":
            return try self.urlencoded(body)
        case "multipart/form-data":
            guard let boundaryParameter = parts.dropFirst().first(where: { $0.lowercased().hasPrefix("boundary=") }) else {
                throw .invalidRequest("Missing multipart boundary")
            }
            var boundary = String(boundaryParameter.dropFirst("boundary=".count))
            if boundary.hasPrefix("\"") && boundary.hasSuffix("\"") && boundary.count >= 2 {
                boundary = String(boundary.dropFirst().dropLast())
            }
            guard !boundary.isEmpty, boundary.utf8.count <= 200 else { throw .invalidRequest("Bad multipart boundary") }
            return try self.multipart(body, boundary: Array(boundary.utf8))
        default:
            throw .invalidRequest("The body must be application/x-www-form-urlencoded or multipart/form-data")
        }
    }

    static func urlencoded(_ body: [UInt8]) throws(OAuthError) -> FormFields {
        var fields = FormFields()
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : []) else {
                throw .invalidRequest("Malformed form encoding")
            }
            try fields.add(name, value)
        }
        return fields
    }

    private static func decode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex,
                    let value = UInt8(String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
                else { return nil }
                out.append(value)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(validating: out, as: UTF8.self)
    }

    static func multipart(_ body: [UInt8], boundary: [UInt8]) throws(OAuthError) -> FormFields {
        let delimiter = Array("--".utf8) + boundary
        var fields = FormFields()
        var position = try Self.find(delimiter, in: body, from: 0)
        while true {
            position += delimiter.count
            if body[position...].starts(with: "--".utf8) { return fields }  // the closing delimiter
            guard body[position...].starts(with: "\r\n".utf8) else { throw .invalidRequest("Malformed multipart body") }
            position += 2
            let headerEnd = try Self.find(Array("\r\n\r\n".utf8), in: body, from: position)
            let headers = String(decoding: body[position..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            let next = try Self.find(Array("\r\n".utf8) + delimiter, in: body, from: contentStart)
            var name: String?
            for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                for parameter in line.split(separator: ";").dropFirst() {
                    let trimmed = parameter.trimmingSpaces()
                    if trimmed.hasPrefix("name=") {
                        name = String(trimmed.dropFirst(5)).trimmingQuotes()
                    }
                }
            }
            guard let name, let value = String(validating: body[contentStart..<next], as: UTF8.self) else {
                throw .invalidRequest("Malformed multipart part")
            }
            try fields.add(name, value)
            position = next + 2
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) throws(OAuthError) -> Int {
        guard needle.count <= haystack.count, start <= haystack.count - needle.count else {
            throw .invalidRequest("Malformed multipart body")
        }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0] && haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        throw .invalidRequest("Malformed multipart body")
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's OWS, RFC 9110 §5.6.3).
    package func trimmingSpaces() -> String {
        // Most values have nothing to trim: the edge bytes tell, without forming Characters (a
        // Character that is a space or a tab is that one byte).
        var text = Substring(self)
        guard let first = text.utf8.first, let last = text.utf8.last else { return "" }
        let space = UInt8(ascii: " ")
        let tab = UInt8(ascii: "\t")
        if first != space && first != tab && last != space && last != tab { return String(self) }
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return String(text)
    }

    func trimmingQuotes() -> String {
        if self.hasPrefix("\"") && self.hasSuffix("\"") && self.count >= 2 { return String(self.dropFirst().dropLast()) }
        return String(self)
    }
}
