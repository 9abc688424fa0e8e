import NIOCore
@testable import PortcullisServer
import Testing

@Suite("The decision service's answers as bytes")
struct AnswerBytesTests {
    private func written(
        _ status: Int, _ fields: [(name: String, value: String)], framing: [(name: String, value: String)] = [], body: String = ""
    ) -> String? {
        var buffer = ByteBuffer()
        guard AnswerBytes.write(status: status, fields: fields, framing: framing, body: Array(body.utf8), into: &buffer) else {
            #expect(buffer.readableBytes == 0, "nothing is written for an answer that cannot be sent")
            return nil
        }
        return buffer.readString(length: buffer.readableBytes)
    }

    @Test("a status line, the fields in order, an empty line, the body")
    func layout() {
        let text = self.written(
            403, [("X-Portcullis-Status", "404"), ("X-Auth-Roles", "")], framing: [("Content-Length", "22")],
            body: #"{"detail":"Not Found"}"#)
        #expect(
            text == "HTTP/1.1 403 Forbidden\r\nX-Portcullis-Status: 404\r\nX-Auth-Roles: \r\nContent-Length: 22\r\n\r\n"
                + #"{"detail":"Not Found"}"#)
        #expect(self.written(200, []) == "HTTP/1.1 200 OK\r\n\r\n")
    }

    @Test("a value with a line break or a control character, or a name that is no token, is not sent")
    func unsendable() {
        for value in ["a\r\nX-Auth-Subject: admin", "a\nb", "a\rb", "a\u{0}b", "a\u{7F}b", "a\u{1B}b"] {
            #expect(self.written(200, [("X-Auth-Subject", value)]) == nil, "\(value.debugDescription)")
        }
        for name in ["", "X Auth", "X-Auth:", "X-Auth\r\n", "Ä"] {
            #expect(self.written(200, [(name, "v")]) == nil, "\(name.debugDescription)")
            #expect(self.written(200, [], framing: [(name, "v")]) == nil, "\(name.debugDescription)")
        }
        // Tabs, spaces and UTF-8 text are field content.
        #expect(self.written(200, [("X-Auth-Email", "jo\té @ example")]) == "HTTP/1.1 200 OK\r\nX-Auth-Email: jo\té @ example\r\n\r\n")
    }
}
