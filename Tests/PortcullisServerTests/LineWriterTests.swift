import Foundation
import PortcullisServer
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct LineWriterTests {
    /// Reads what is in the pipe now, without waiting.
    private static func readAvailable(_ descriptor: Int32) -> [UInt8] {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return out }
            out += chunk[..<count]
        }
    }

    @Test func aStalledReaderCostsCountedLinesNotMemory() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        _ = fcntl(ends[1], 1031 /* F_SETPIPE_SZ */, 4096)
        let writer = LineWriter(descriptor: ends[1], ownsDescriptor: true, capacity: 10_000, threadName: "test-writer")
        let line = Array("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef\n".utf8)
        let total = 5_000
        for _ in 0..<total { writer.append(line) }
        // The reader never reads: the flush gives up instead of hanging.
        #expect(writer.flush(timeout: .milliseconds(300)) == false)
        #expect(writer.droppedLines > total / 2)
        // Once the reader catches up, every line is either delivered whole or counted as dropped.
        var delivered: [UInt8] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while !writer.flush(timeout: .milliseconds(10)) && ContinuousClock.now < deadline {
            delivered += Self.readAvailable(ends[0])
        }
        delivered += Self.readAvailable(ends[0])
        #expect(delivered.count % line.count == 0)
        #expect(delivered.count / line.count + writer.droppedLines == total)
        #expect(delivered.starts(with: line))
    }

    @Test func reopenSendsLaterLinesToTheNewDescriptor() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("linewriter-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = directory.appendingPathComponent("a.log").path
        let second = directory.appendingPathComponent("b.log").path
        let writer = LineWriter(
            descriptor: open(first, O_WRONLY | O_CREAT | O_APPEND, 0o600), ownsDescriptor: true, capacity: 1 << 16, threadName: "test-writer")
        writer.append(Array("one\n".utf8))
        #expect(writer.flush(timeout: .seconds(5)))
        writer.reopen(open(second, O_WRONLY | O_CREAT | O_APPEND, 0o600))
        writer.append(Array("two\n".utf8))
        #expect(writer.flush(timeout: .seconds(5)))
        #expect(try String(contentsOfFile: first, encoding: .utf8) == "one\n")
        #expect(try String(contentsOfFile: second, encoding: .utf8) == "two\n")
        #expect(writer.droppedLines == 0)
    }

    @Test func aFailingDescriptorCountsItsLinesAsDropped() {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        close(ends[0])
        signal(SIGPIPE, SIG_IGN)
        // Writing to a pipe without a reader fails with EPIPE.
        let writer = LineWriter(descriptor: ends[1], ownsDescriptor: true, capacity: 1 << 16, threadName: "test-writer")
        for _ in 0..<3 { writer.append(Array("line\n".utf8)) }
        #expect(writer.flush(timeout: .seconds(5)))
        #expect(writer.droppedLines == 3)
    }
}
