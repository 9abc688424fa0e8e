import NIOCore
import NIOHTTP1
import PortcullisCore

/// The bytes of an HTTP/1.1 answer that the decision service writes itself: a status line,
/// header fields and a body, in one buffer and one write.
///
/// The decision listener has no response encoder in its pipeline: an answer is a few fields
/// and at most a short JSON body, framed by `Content-Length`, and passing it through NIO's
/// encoder, header validator and error handler in two parts cost more than deciding it.
/// The checks those handlers made are made here, before anything is written.
enum AnswerBytes {
    /// Writes the answer into `buffer`, or writes nothing and returns false when a field
    /// could not be sent as it is: a name that is not a token, or a value with a control
    /// character (a line break would start a field of its own).
    /// - Parameters:
    ///   - fields: every field, framing included, in order.
    ///   - body: the bytes after the head; empty for a HEAD request's answer.
    static func write(
        status: Int, fields: [(name: String, value: String)], body: [UInt8], into buffer: inout ByteBuffer
    ) -> Bool {
        for (name, value) in fields where !HeaderName.isToken(name) || !Self.isFieldValue(value) { return false }
        // Gathered in an array, then written to the buffer at once.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 } + body.count)
        bytes.append(contentsOf: "HTTP/1.1 ".utf8)
        bytes.append(contentsOf: String(status).utf8)
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: HTTPResponseStatus(statusCode: status).reasonPhrase.utf8)
        bytes.append(contentsOf: "\r\n".utf8)
        for (name, value) in fields {
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: ": ".utf8)
            bytes.append(contentsOf: value.utf8)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        bytes.append(contentsOf: "\r\n".utf8)
        bytes.append(contentsOf: body)
        buffer.writeBytes(bytes)
        return true
    }

    /// A field value: visible characters, spaces and tabs, and bytes of UTF-8 text; no other
    /// control character (RFC 9110 §5.5).
    static func isFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }
    }
}
