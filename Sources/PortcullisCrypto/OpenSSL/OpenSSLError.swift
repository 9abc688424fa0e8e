internal import CPortcullisOpenSSL

/// A failure inside OpenSSL, with the library's own error code captured where it happened.
package struct OpenSSLError: Error, Hashable, Sendable, CustomStringConvertible {
    package var operation: String
    package var code: UInt

    /// Reads and clears OpenSSL's error queue, so no stale error leaks into the next caller.
    static func capture(_ operation: String) -> OpenSSLError {
        let code = ERR_get_error()
        ERR_clear_error()
        return OpenSSLError(operation: operation, code: code)
    }

    package var description: String {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(self.code, &buffer, buffer.count)
        let text = buffer.withUnsafeBufferPointer { pointer in
            String(decoding: UnsafeRawBufferPointer(pointer).prefix { $0 != 0 }, as: UTF8.self)
        }
        return "\(self.operation) failed" + (self.code == 0 ? "" : ": \(text)")
    }
}
