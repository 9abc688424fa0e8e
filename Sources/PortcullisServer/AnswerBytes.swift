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
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
        buffer.writeStaticString("\r\n")
        for (name, value) in fields {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        buffer.writeBytes(body)
        return true
    }

    /// A field value: visible characters, spaces and tabs, and bytes of UTF-8 text; no other
    /// control character (RFC 9110 §5.5).
    static func isFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }
    }
}
