internal import CPortcullisCurl
package import NIOCore
import Synchronization

/// Receives one upstream exchange's events. Every method is called on the curl thread, so
/// implementations hand the work to their own event loop and return at once.
package protocol UpstreamResponseHandler: AnyObject, Sendable {
    func upstreamResponseHead(_ head: UpstreamResponseHead)
    /// Body bytes; the gateway must report them written with
    /// ``UpstreamTransfer/responseBodyWritten(_:clientWritable:)``.
    func upstreamResponseBody(_ bytes: ByteBuffer)
    /// The request-body queue drained below its low-water mark after the reader was paused.
    func upstreamWantsRequestBody()
    /// The exchange ended: `nil` after the whole response was delivered.
    func upstreamFinished(_ error: UpstreamError?)
    /// `true` for handlers that take body bytes synchronously (small in-memory documents): they
    /// are never paused and need not report bytes written.
    var consumesBodySynchronously: Bool { get }
}

extension UpstreamResponseHandler {
    package var consumesBodySynchronously: Bool { false }
}

/// One upstream exchange. The gateway side feeds the request body and reports how much of the
/// response it has written; the curl thread runs the transfer.
///
/// Two kinds of state live here. `shared` is the only state both sides touch, always under its
/// mutex, and the lock is held only to move counters and buffers, never around a curl call or a
/// callback. Everything else is confined to the curl thread (see ``CurlMulti``).
package final class UpstreamTransfer: @unchecked Sendable {  // see the confinement note above
    package let request: UpstreamRequest
    let handler: any UpstreamResponseHandler
    unowned let multi: CurlMulti

    /// Response bytes queued towards the client beyond which curl is paused, and below which it
    /// resumes.
    static let responseHighWater = 256 << 10
    static let responseLowWater = 64 << 10
    /// Client body bytes buffered for curl beyond which the client connection stops being read.
    static let requestHighWater = 256 << 10
    static let requestLowWater = 64 << 10

    private struct Shared {
        /// Created with the first chunk: most requests have no body.
        var requestChunks: CircularBuffer<ByteBuffer>?
        var requestBuffered = 0
        var requestEnded = false
        var requestAborted = false
        /// curl asked for body bytes, found none, and is paused until more arrive.
        var curlReadPaused = false
        /// The gateway stopped reading the client because the queue is full.
        var clientReadStalled = false
        var responseQueued = 0
        var clientBlocked = false
        var curlWritePaused = false
    }

    private let shared = Mutex(Shared())

    // Confined to the curl thread.
    var easy: UnsafeMutableRawPointer?
    /// The request's header list (see ``CurlMulti``), freed when the transfer finishes.
    var headerBlock: UnsafeMutableRawPointer?
    var retainedByCurl: Unmanaged<UpstreamTransfer>?
    var finished = false
    private var status = 0
    private var reason = ""
    private var headers: [(name: String, value: String)] = []
    private var headDelivered = false

    init(request: UpstreamRequest, handler: any UpstreamResponseHandler, multi: CurlMulti) {
        self.request = request
        self.handler = handler
        self.multi = multi
    }

    // MARK: the gateway's side (any thread)

    /// Queues client body bytes for the upstream.
    /// - Returns: `false` when the queue is full and the caller should stop reading the client
    ///   until ``UpstreamResponseHandler/upstreamWantsRequestBody()``.
    package func appendRequestBody(_ buffer: ByteBuffer) -> Bool {
        let (resume, keepReading) = self.shared.withLock { state -> (Bool, Bool) in
            if state.requestChunks == nil { state.requestChunks = CircularBuffer(initialCapacity: 8) }
            state.requestChunks!.append(buffer)
            state.requestBuffered += buffer.readableBytes
            let resume = state.curlReadPaused
            state.curlReadPaused = false
            let keepReading = state.requestBuffered < Self.requestHighWater
            if !keepReading { state.clientReadStalled = true }
            return (resume, keepReading)
        }
        if resume { self.multi.submit(.unpause(self)) }
        return keepReading
    }

    /// The client's body is complete.
    package func endRequestBody() {
        let resume = self.shared.withLock { state -> Bool in
            state.requestEnded = true
            defer { state.curlReadPaused = false }
            return state.curlReadPaused
        }
        if resume { self.multi.submit(.unpause(self)) }
    }

    /// Reports `count` response bytes handed to the client connection.
    package func responseBodyWritten(_ count: Int, clientWritable: Bool) {
        let resume = self.shared.withLock { state -> Bool in
            state.responseQueued -= count
            state.clientBlocked = !clientWritable
            return Self.shouldResumeWriting(&state)
        }
        if resume { self.multi.submit(.unpause(self)) }
    }

    /// Reports a change of the client connection's writability.
    package func clientWritabilityChanged(_ writable: Bool) {
        let resume = self.shared.withLock { state -> Bool in
            state.clientBlocked = !writable
            return Self.shouldResumeWriting(&state)
        }
        if resume { self.multi.submit(.unpause(self)) }
    }

    /// Abandons the exchange (the client went away, or its body broke a limit). The handler is
    /// told once, with `.cancelled`, unless the exchange already finished.
    package func cancel() {
        self.shared.withLock { $0.requestAborted = true }
        self.multi.submit(.cancel(self))
    }

    private static func shouldResumeWriting(_ state: inout Shared) -> Bool {
        guard state.curlWritePaused, !state.clientBlocked, state.responseQueued <= Self.responseLowWater else {
            return false
        }
        state.curlWritePaused = false
        return true
    }

    // MARK: curl callbacks (curl thread)

    /// Why the upstream's response head was refused, when it was: the transfer then fails
    /// (curl stops at the header callback's refusal) and the client gets a 502.
    private(set) var rejectedHead: String?

    /// Whether a final (non-1xx) response head reached the handler.
    var deliveredHead: Bool { self.headDelivered }

    /// Takes one line of the upstream's response head. Returns `false` to refuse the response:
    /// the gateway frames what it sends the client from these headers, so anything that could
    /// frame it two ways, or that a client could read differently, never gets through.
    func receiveHeaderLine(_ line: UnsafeRawBufferPointer) -> Bool {
        var bytes = line[...]
        if bytes.last == UInt8(ascii: "\n") { bytes = bytes.dropLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        if bytes.isEmpty {
            // End of a head. 1xx heads (100 Continue) are followed by the real one.
            if self.status >= 200 && !self.headDelivered {
                guard let headers = self.framedHeaders() else { return false }
                self.headDelivered = true
                self.handler.upstreamResponseHead(UpstreamResponseHead(status: self.status, reason: self.reason, headers: headers))
                self.headers = []
            }
            return true
        }
        if self.headDelivered { return true }  // trailers: not forwarded
        if bytes.starts(with: "HTTP/".utf8) {
            // A new status line: "HTTP/1.1 200 OK".
            self.headers.removeAll(keepingCapacity: true)
            // The code is the second space-separated word, the reason whatever follows it.
            guard var start = bytes.firstIndex(of: UInt8(ascii: " ")) else { return self.reject("a status line without a code") }
            while start < bytes.endIndex, bytes[start] == UInt8(ascii: " ") { start += 1 }
            var end = start
            var code = 0
            while end < bytes.endIndex, bytes[end] != UInt8(ascii: " ") {
                let digit = bytes[end] &- UInt8(ascii: "0")
                guard digit < 10, end - start < 3 else { return self.reject("a malformed status code") }
                code = code * 10 + Int(digit)
                end += 1
            }
            // RFC 9110 §15: three digits, 100-599. A 101 answers an upgrade the gateway never
            // asks for (it removes Upgrade): what follows it would not be HTTP.
            guard end - start == 3, (100...599).contains(code) else { return self.reject("status code out of range") }
            guard code != 101 else { return self.reject("101 Switching Protocols without an upgrade request") }
            while end < bytes.endIndex, bytes[end] == UInt8(ascii: " ") { end += 1 }
            guard bytes[end...].allSatisfy(Self.isFieldValueByte) else { return self.reject("a control character in the reason phrase") }
            self.status = code
            self.reason = String(decoding: bytes[end...], as: UTF8.self)
            return true
        }
        // RFC 9112 §5: `token ":" OWS value OWS`; no obs-fold (a proxy must not pass it on), no
        // white space before the colon, and no control characters (a bare CR among them).
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > bytes.startIndex,
            bytes[..<colon].allSatisfy(Self.isTokenByte)
        else { return self.reject("a malformed header line") }
        var value = bytes[bytes.index(after: colon)...]
        while let first = value.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { value = value.dropFirst() }
        while let last = value.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { value = value.dropLast() }
        guard value.allSatisfy(Self.isFieldValueByte) else { return self.reject("a control character in a header value") }
        self.headers.append((String(decoding: bytes[..<colon], as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return true
    }

    private func reject(_ reason: String) -> Bool {
        self.rejectedHead = reason
        return false
    }

    /// The final head's headers with one canonical `Content-Length`, or `nil` (and the response
    /// refused) when the framing is ambiguous: differing or malformed lengths, or a length beside
    /// a transfer coding (RFC 9112 §6.3: a sign of response splitting).
    private func framedHeaders() -> [(name: String, value: String)]? {
        var length: UInt64?
        var lengthFields = 0
        var canonical = true
        var hasTransferCoding = false
        for (name, value) in self.headers {
            if name.equalsIgnoringASCIICase("transfer-encoding") {
                hasTransferCoding = true
                // curl removes `chunked`; any other coding (gzip, compress, deflate) would reach
                // the client undecoded once the hop-by-hop header is gone (RFC 9112 §6.1).
                for coding in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                    var token = coding[...]
                    while token.first == UInt8(ascii: " ") || token.first == UInt8(ascii: "\t") { token = token.dropFirst() }
                    while token.last == UInt8(ascii: " ") || token.last == UInt8(ascii: "\t") { token = token.dropLast() }
                    guard token.count == 7, String(decoding: token, as: UTF8.self).equalsIgnoringASCIICase("chunked") else {
                        _ = self.reject("a transfer coding other than chunked")
                        return nil
                    }
                }
            } else if name.equalsIgnoringASCIICase("content-length") {
                lengthFields += 1
                canonical = canonical && value.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
                for element in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                    var digits = element[...]
                    while digits.first == UInt8(ascii: " ") || digits.first == UInt8(ascii: "\t") { digits = digits.dropFirst() }
                    while digits.last == UInt8(ascii: " ") || digits.last == UInt8(ascii: "\t") { digits = digits.dropLast() }
                    guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        _ = self.reject("a malformed Content-Length")
                        return nil
                    }
                    let parsed = digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }
                    guard length == nil || length == parsed else {
                        _ = self.reject("differing Content-Length values")
                        return nil
                    }
                    length = parsed
                }
            }
        }
        guard lengthFields > 0 else { return self.headers }
        guard !hasTransferCoding else {
            _ = self.reject("both Content-Length and Transfer-Encoding")
            return nil
        }
        // The usual case, one field of plain digits, goes on as it came; repeats and lists are
        // rewritten as one field.
        if lengthFields == 1 && canonical { return self.headers }
        var headers = self.headers.filter { !$0.name.equalsIgnoringASCIICase("content-length") }
        headers.append(("Content-Length", String(length!)))
        return headers
    }

    /// tchar (RFC 9110 §5.6.2).
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// field-vchar, SP or HTAB (RFC 9110 §5.5): no CR, LF, NUL or other control character.
    private static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    /// - Returns: the bytes accepted, or curl's pause marker when the client is behind.
    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        let count = bytes.count
        if self.handler.consumesBodySynchronously {
            self.handler.upstreamResponseBody(ByteBuffer(bytes: bytes))
            return count
        }
        let accept = self.shared.withLock { state -> Bool in
            if state.clientBlocked || state.responseQueued >= Self.responseHighWater {
                state.curlWritePaused = true
                return false
            }
            state.responseQueued += count
            return true
        }
        guard accept else { return Int(PC_CURL_WRITEFUNC_PAUSE) }
        self.handler.upstreamResponseBody(ByteBuffer(bytes: bytes))
        return count
    }

    /// Fills curl's upload buffer from the queued client body.
    func provideBody(into destination: UnsafeMutableRawBufferPointer) -> Int {
        var wantMore = false
        let result = self.shared.withLock { state -> Int in
            if state.requestAborted { return Int(PC_CURL_READFUNC_ABORT) }
            var written = 0
            while written < destination.count, var chunk = state.requestChunks?.first {
                let take = min(chunk.readableBytes, destination.count - written)
                chunk.withUnsafeReadableBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: destination[written..<(written + take)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<take]))
                }
                chunk.moveReaderIndex(forwardBy: take)
                written += take
                if chunk.readableBytes == 0 {
                    state.requestChunks!.removeFirst()
                } else {
                    state.requestChunks![state.requestChunks!.startIndex] = chunk
                }
            }
            state.requestBuffered -= written
            if state.clientReadStalled && state.requestBuffered <= Self.requestLowWater {
                state.clientReadStalled = false
                wantMore = true
            }
            if written > 0 { return written }
            if state.requestEnded { return 0 }
            state.curlReadPaused = true
            return Int(PC_CURL_READFUNC_PAUSE)
        }
        if wantMore { self.handler.upstreamWantsRequestBody() }
        return result
    }

    var isCancelled: Bool { self.shared.withLock { $0.requestAborted } }
}
