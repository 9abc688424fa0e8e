import NIOHTTP1

/// Header filtering for both directions of the proxy (RFC 9110 §7.6.1).
enum HopByHopHeaders {
    /// Lower-case names that never cross the gateway in either direction.
    static let always: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// The lower-case names the `Connection` header lists: they are hop-by-hop too.
    static func listedInConnection(_ headers: HTTPHeaders) -> Set<String> {
        var names = Set<String>()
        for value in headers[canonicalForm: "connection"] {
            let name = value.trimmingASCIISpaces().lowercased()
            if !name.isEmpty { names.insert(name) }
        }
        return names
    }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
