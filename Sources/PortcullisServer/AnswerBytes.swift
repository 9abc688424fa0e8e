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
    ///   - fields: the answer's fields, in order.
    ///   - framing: the fields that frame it (`Content-Length`…), after them.
    ///   - body: the bytes after the head; empty for a HEAD request's answer.
    static func write(
        status: Int, fields: [(name: String, value: String)], framing: [(name: String, value: String)], body: [UInt8],
        into buffer: inout ByteBuffer
    ) -> Bool {
        for (name, value) in fields where !HeaderName.isToken(name) || !Self.isFieldValue(value) { return false }
        for (name, value) in framing where !HeaderName.isToken(name) || !Self.isFieldValue(value) { return false }
        let statusLine = "HTTP/1.1 \(status) \(HTTPResponseStatus(statusCode: status).reasonPhrase)\r\n"
        func length(_ fields: [(name: String, value: String)]) -> Int {
            fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
        }
        let size = statusLine.utf8.count + length(fields) + length(framing) + 2 + body.count
        // One copy of each piece, into the buffer's own memory.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            var cursor = Cursor(out: out)
            cursor.put(statusLine)
            for (name, value) in fields { cursor.put(field: name, value) }
            for (name, value) in framing { cursor.put(field: name, value) }
            cursor.put("\r\n")
            body.withUnsafeBytes { cursor.put($0) }
            return cursor.at
        }
        return true
    }

    /// Copies pieces one after the other into `out`, which has room for all of them.
    private struct Cursor {
        let out: UnsafeMutableRawBufferPointer
        var at = 0

        mutating func put(_ bytes: UnsafeRawBufferPointer) {
            UnsafeMutableRawBufferPointer(rebasing: self.out[self.at..<self.at + bytes.count]).copyMemory(from: bytes)
            self.at += bytes.count
        }

        mutating func put(field name: String, _ value: String) {
            self.put(name)
            self.put(": ")
            self.put(value)
            self.put("\r\n")
        }

        mutating func put(_ text: String) {
            if text.utf8.withContiguousStorageIfAvailable({ self.put(UnsafeRawBufferPointer($0)) }) == nil {
                Array(text.utf8).withUnsafeBytes { self.put($0) }
            }
        }
    }

    /// A field value: visible characters, spaces and tabs, and bytes of UTF-8 text; no other
    /// control character (RFC 9110 §5.5).
    static func isFieldValue(_ value: String) -> Bool {
        value.utf8.withContiguousStorageIfAvailable { $0.allSatisfy(Self.isFieldByte) } ?? value.utf8.allSatisfy(Self.isFieldByte)
    }

    private static func isFieldByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == 0x09
    }
}
