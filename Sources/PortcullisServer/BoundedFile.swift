#if canImport(Glibc)
import Glibc
#endif
package import PortcullisCore

/// Reads the files a configuration names: the configuration itself, `users_file`, key,
/// secret, certificate and JWKS files, and policy case files.
///
/// Only regular files are read, and only up to a size limit. A path to a device, a FIFO or a
/// directory (`/dev/zero`, `/dev/stdin`, a named pipe with no writer) would otherwise block
/// start-up or a reload forever, or fill memory; such mistakes are configuration errors
/// instead, with the reason.
package enum BoundedFile {
    /// Far beyond any real configuration, users file, key or CA bundle.
    package static let limit = 64 << 20

    package static func read(_ path: String, limit: Int = Self.limit) throws(FileReadError) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO must not wait for a writer. It does not affect regular files.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FileReadError(errno: errno) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw FileReadError(errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw FileReadError(status.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file")
        }
        guard status.st_size <= limit else { throw FileReadError("larger than \(Self.describe(limit))") }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size) + 1)
        var filled = 0
        // The file may grow between fstat and read: read until end of file, never beyond the limit.
        while true {
            if filled == bytes.count {
                guard bytes.count <= limit else { throw FileReadError("larger than \(Self.describe(limit))") }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, limit + 1 - bytes.count)))
            }
            let count = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(fd, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileReadError(errno: errno)
            }
            if count == 0 { break }
            filled += count
        }
        bytes.removeSubrange(filled...)
        return bytes
    }

    private static func describe(_ limit: Int) -> String { "\(limit >> 20) MiB" }
}

extension FileReadError {
    init(errno code: Int32) {
        switch code {
        case ENOENT: self.init("no such file")
        case EACCES, EPERM: self.init("permission denied")
        case EISDIR: self.init("a directory")
        default: self.init(String(cString: strerror(code)))
        }
    }
}
