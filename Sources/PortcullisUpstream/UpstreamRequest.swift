/// One request to send upstream, already decided and rewritten by the gateway.
package struct UpstreamRequest: Sendable {
    package enum Body: Sendable, Equatable {
        /// No body and no framing header (GET, HEAD, DELETE without a body…).
        case none
        /// Exactly this many bytes, sent with `Content-Length`.
        case length(Int64)
        /// Unknown length, sent chunked.
        case streamed
    }

    package var url: String
    package var method: String
    /// Headers to send, already filtered of hop-by-hop and framing headers.
    package var headers: UpstreamHeaderLines
    package var body: Body
    package var unixSocketPath: String?
    package var connectTimeoutMilliseconds: Int64
    package var timeoutMilliseconds: Int64
    package var caFile: String?
    package var clientCertFile: String?
    package var clientKeyFile: String?

    package init(
        url: String, method: String, headers: UpstreamHeaderLines, body: Body, unixSocketPath: String? = nil,
        connectTimeoutMilliseconds: Int64, timeoutMilliseconds: Int64, caFile: String? = nil,
        clientCertFile: String? = nil, clientKeyFile: String? = nil
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.unixSocketPath = unixSocketPath
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.caFile = caFile
        self.clientCertFile = clientCertFile
        self.clientKeyFile = clientKeyFile
    }
}

/// Header lines for an upstream request, held as one block of NUL-terminated `Name: value`
/// strings: the curl thread hands them to libcurl in one allocation instead of copying each line.
package struct UpstreamHeaderLines: Sendable {
    /// The lines, each followed by a NUL byte.
    private(set) var bytes: [UInt8] = []
    package private(set) var count = 0
    /// Whether an `Accept` header is among the lines (curl adds `Accept: */*` otherwise).
    private(set) var hasAccept = false

    package init(reservingBytes capacity: Int = 0) {
        self.bytes.reserveCapacity(capacity)
    }

    /// Adds `name: value`. An empty value is written `name;`, libcurl's form for a header sent
    /// with no value (`name:` alone would remove it). A name or value with a NUL byte, which no
    /// HTTP parser lets through, is left out rather than cut short.
    package mutating func append(name: String, value: String) {
        guard !name.utf8.isEmpty, !Self.hasNUL(name), !Self.hasNUL(value) else { return }
        if !self.hasAccept && name.equalsIgnoringASCIICase("accept") { self.hasAccept = true }
        self.bytes.append(contentsOf: name.utf8)
        if value.isEmpty {
            self.bytes.append(UInt8(ascii: ";"))
        } else {
            self.bytes.append(UInt8(ascii: ":"))
            self.bytes.append(UInt8(ascii: " "))
            self.bytes.append(contentsOf: value.utf8)
        }
        self.bytes.append(0)
        self.count += 1
    }

    private static func hasNUL(_ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { $0.contains(0) } ?? text.utf8.contains(0)
    }
}

/// The status line and headers of an upstream's final (non-1xx) response.
package struct UpstreamResponseHead: Sendable {
    package var status: Int
    package var reason: String
    /// In the order received; repeated names (`Set-Cookie`) stay separate.
    package var headers: [(name: String, value: String)]

    package init(status: Int, reason: String, headers: [(name: String, value: String)]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

extension String {
    /// Equality with `lowercase` (ASCII, already lower-case), ignoring the case of ASCII letters.
    func equalsIgnoringASCIICase(_ lowercase: String) -> Bool {
        self.utf8.count == lowercase.utf8.count
            && self.utf8.elementsEqual(lowercase.utf8) { ($0 &- UInt8(ascii: "A") < 26 ? $0 | 0x20 : $0) == $1 }
    }
}
