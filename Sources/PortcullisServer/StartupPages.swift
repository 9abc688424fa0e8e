#if canImport(Glibc)
import Glibc
#endif

/// Gives back the pages of code and read-only data that only start-up used.
///
/// Loading a configuration runs a lot of code once (argument parsing, YAML, SQLite set-up,
/// Foundation's and the Swift runtime's initialisation), and Linux maps every file page
/// around a faulting one (`fault_around_bytes`, 64 KiB), so after start-up about 35 MiB of
/// the binary and its shared libraries are mapped although serving touches well under half
/// of that. Once the gateway is listening, ``release()`` unmaps the private, read-only,
/// file-backed mappings that hold no private (copy-on-write) page, with `MADV_DONTNEED`. Their
/// contents stay in the page cache; whatever the gateway executes afterwards is mapped again
/// on first use, a minor fault. Writable mappings, relocated read-only data (it holds private
/// pages) and anonymous memory are never touched, so no state can be lost.
package enum StartupPages {
    package struct Released: Equatable, Sendable {
        package var mappings = 0
        package var bytes = 0
    }

    /// A private read-only mapping of a regular file, as `/proc/self/smaps` describes it.
    package struct Mapping: Sendable {
        package var start: UInt
        package var end: UInt
        /// Pages mapped now, and of those the private (copy-on-write) ones, in KiB.
        package var residentKiB: Int
        package var anonymousKiB: Int
    }

    @discardableResult
    package static func release() -> Released {
        var released = Released()
        for mapping in Self.readOnlyFileMappings() where mapping.anonymousKiB == 0 {
            let length = Int(mapping.end - mapping.start)
            if madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), length, MADV_DONTNEED) == 0 {
                released.mappings += 1
                released.bytes += length
            }
        }
        return released
    }

    /// The process's private read-only mappings of regular files (`r-xp` or `r--p`, a path
    /// outside `/dev`): code, constants, symbol tables and relocated read-only data.
    package static func readOnlyFileMappings() -> [Mapping] {
        guard let smaps = Self.read("/proc/self/smaps") else { return [] }
        var mappings: [Mapping] = []
        var current: Mapping?
        for line in smaps.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.last != UInt8(ascii: ":") {  // a mapping's header: "start-end perms offset dev inode path"
                if let done = current { mappings.append(done) }
                current = Self.mapping(fields)
            } else if current != nil, fields.count >= 2, let value = Int(String(decoding: fields[1], as: UTF8.self)) {
                if first.elementsEqual("Rss:".utf8) { current!.residentKiB = value }
                if first.elementsEqual("Anonymous:".utf8) { current!.anonymousKiB = value }
            }
        }
        if let done = current { mappings.append(done) }
        return mappings
    }

    private static func mapping(_ fields: [ArraySlice<UInt8>]) -> Mapping? {
        guard fields.count >= 6, let dash = fields[0].firstIndex(of: UInt8(ascii: "-")) else { return nil }
        let permissions = fields[1]
        guard permissions.elementsEqual("r-xp".utf8) || permissions.elementsEqual("r--p".utf8) else { return nil }
        let path = fields[5]
        guard path.first == UInt8(ascii: "/"), !path.starts(with: "/dev/".utf8) else { return nil }
        guard let start = UInt(String(decoding: fields[0][..<dash], as: UTF8.self), radix: 16),
            let end = UInt(String(decoding: fields[0][fields[0].index(after: dash)...], as: UTF8.self), radix: 16),
            end > start
        else { return nil }
        // Unknown until the mapping's Anonymous line is read: assume private pages meanwhile.
        return Mapping(start: start, end: end, residentKiB: 0, anonymousKiB: Int.max)
    }

    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return bytes
    }
}
