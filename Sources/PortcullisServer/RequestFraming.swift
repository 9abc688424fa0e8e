import NIOHTTP1
import PortcullisCore

/// The framing checks the HTTP decoder leaves to the gateway (RFC 9112 §3.2, §6): how many
/// fields and Host values a head has, and whether its body's length is knowable and allowed.
/// Every refusal here ends the connection, since the bytes that follow cannot be trusted to
/// start a request.
enum RequestFraming {
    /// How a request's body is framed.
    struct Framing {
        /// `Content-Length`, when given (and consistent).
        var declaredLength: Int64?
        /// A `Transfer-Encoding` field makes the body chunked whatever it holds.
        var chunked: Bool
    }

    enum Outcome {
        case framed(Framing)
        case refused(Refusal)
    }

    /// More header fields than any browser or API client sends (Envoy's default is 100).
    static let maximumFields = 256

    static func read(_ head: HTTPRequestHead, maximumBody: Int) -> Outcome {
        // NIO bounds the bytes of names and values, not how many fields there are: tens of
        // thousands of tiny fields would each be copied and sent upstream.
        if head.headers.count > Self.maximumFields {
            return .refused(Refusal(status: 431, detail: "Request Header Fields Too Large", reason: .headersTooLarge))
        }
        // One pass finds the Host fields and whether the framing headers are there at all.
        var hosts = 0
        var hasContentLength = false
        var hasTransferEncoding = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where name.equalsIgnoringASCIICase("host"): hosts += RequestFacts.listElementCount(value)
            case 14 where name.equalsIgnoringASCIICase("content-length"): hasContentLength = true
            case 17 where name.equalsIgnoringASCIICase("transfer-encoding"): hasTransferEncoding = true
            default: break
            }
        }
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (routes may match on it).
        if hosts > 1 || (hosts == 0 && head.version == .http1_1) {
            return .refused(Refusal(status: 400, detail: hosts > 1 ? "More than one Host header" : "Missing Host header", reason: .badHost))
        }

        // Framing checks the HTTP decoder leaves to us.
        let lengths = hasContentLength ? head.headers[canonicalForm: "content-length"] : []
        var declaredLength: Int64?
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), let value = Int64(first), value >= 0 else {
                return .refused(Refusal(status: 400, detail: "Invalid Content-Length", reason: .badFraming))
            }
            declaredLength = value
        }
        // A Transfer-Encoding field makes the body chunked whatever it holds, even nothing: an
        // empty or odd value must not let Content-Length frame the request instead.
        let chunked = hasTransferEncoding
        if hasTransferEncoding {
            // RFC 9112 §6.1: HTTP/1.0 has no chunked coding, so the body's end is unknowable; the
            // request is refused and the connection closed rather than decoded as chunked.
            if head.version == .http1_0 {
                return .refused(Refusal(status: 400, detail: "Transfer-Encoding in an HTTP/1.0 request", reason: .badFraming))
            }
            if hasContentLength {
                return .refused(Refusal(status: 400, detail: "Both Content-Length and Transfer-Encoding", reason: .badFraming))
            }
            let codings = head.headers[canonicalForm: "transfer-encoding"]
            guard let last = codings.last, last.utf8.elementsEqual("chunked".utf8, by: { $0 | 0x20 == $1 }) else {
                // RFC 9112 §6.3: a request whose final coding is not chunked has no knowable length.
                return .refused(Refusal(status: 400, detail: "Transfer-Encoding must end with chunked", reason: .badFraming))
            }
            if codings.count > 1 {
                // RFC 9112 §6.1: chunked at most once; any other coding is one the gateway does not
                // decode, so it is refused (501) rather than dropped or passed on unframed.
                let repeated = codings.dropLast().contains { $0.utf8.elementsEqual("chunked".utf8, by: { $0 | 0x20 == $1 }) }
                return .refused(repeated
                        ? Refusal(status: 400, detail: "chunked applied more than once", reason: .badFraming)
                        : Refusal(status: 501, detail: "Not Implemented", reason: .unsupportedTransferCoding))
            }
        }
        if let declaredLength, declaredLength > Int64(maximumBody) {
            return .refused(Refusal.bodyTooLarge)
        }

        // The upstream gets the method that was authorized, and HEAD carries no body (RFC 9110
        // §9.3.2): one that comes with a body is refused, never passed on as another method.
        if head.method == .HEAD && (chunked || (declaredLength ?? 0) > 0) {
            return .refused(Refusal(status: 400, detail: "A HEAD request has no body", reason: .badFraming))
        }
        return .framed(Framing(declaredLength: declaredLength, chunked: chunked))
    }
}
