import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Lines bound for a descriptor that may stall (a pipe nobody reads, a full disk, a terminal on
/// hold), written by a thread of its own so that no event loop ever waits on it.
///
/// Appending takes a short lock and copies the line into a buffer; every 50 ms the writer thread
/// swaps the buffer out and writes it. While the buffer holds `capacity` bytes, further lines are
/// dropped and counted (``droppedLines``, exported as `portcullis_log_dropped_lines_total`), so a
/// stalled reader costs log lines, never memory without bound and never requests.
package final class LineWriter: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var droppedLines = 0
        /// A freshly opened descriptor that takes over before the next write (``reopen(_:)``).
        var replacement: Int32?
        /// The writer thread holds bytes taken from `pending` that are not written yet.
        var writing = false
    }

    private let state = Mutex(State())
    private let capacity: Int
    /// Used only by the writer thread once it runs; atomic so that `deinit` reads what it left.
    private let descriptor: Atomic<Int32>
    /// Whether the writer closes its descriptors (files it opened), or leaves them (stdout, stderr).
    private let ownsDescriptor: Bool

    package init(descriptor: Int32, ownsDescriptor: Bool, capacity: Int, threadName: String) {
        self.descriptor = Atomic(descriptor)
        self.ownsDescriptor = ownsDescriptor
        self.capacity = capacity
        let thread = Thread { [weak self] in
            var spare: [UInt8] = []
            while true {
                var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
                nanosleep(&pause, nil)
                guard let writer = self else { return }
                writer.drain(into: &spare)
            }
        }
        thread.name = threadName
        thread.start()
    }

    /// The gateway's own messages on standard error (swift-log's `StreamLogHandler` writes
    /// through ``stream``). 1 MiB of them can wait for a slow reader.
    package static let standardError = LineWriter(
        descriptor: 2, ownsDescriptor: false, capacity: 1 << 20, threadName: "portcullis-stderr")

    /// Queues one line (the caller includes its newline), or drops it when the buffer is full.
    package func append(_ line: some Sequence<UInt8>) {
        self.state.withLock { state in
            if state.pending.count >= self.capacity {
                state.droppedLines += 1
                return
            }
            state.pending.append(contentsOf: line)
        }
    }

    /// Lines dropped since start because the buffer was full or the descriptor refused them.
    package var droppedLines: Int { self.state.withLock { $0.droppedLines } }

    /// Makes `descriptor` the target of every later write; the writer thread closes the old one
    /// (when it owns it) before its next write, so no descriptor is closed while in use.
    package func reopen(_ descriptor: Int32) {
        let superseded = self.state.withLock { state in
            defer { state.replacement = descriptor }
            return state.replacement
        }
        if let superseded { close(superseded) }
    }

    /// Waits until everything appended so far is written, or until `timeout` has passed (the
    /// descriptor stalls): shutdown must not hang on a reader that went away.
    /// - Returns: whether everything was written.
    @discardableResult
    package func flush(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if self.state.withLock({ $0.pending.isEmpty && !$0.writing && $0.replacement == nil }) { return true }
            if ContinuousClock.now >= deadline { return false }
            var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            nanosleep(&pause, nil)
        }
    }

    /// One pass of the writer thread. `spare` is the thread's own buffer, swapped with the
    /// pending one so that neither side allocates in the steady state.
    private func drain(into spare: inout [UInt8]) {
        let replacement = self.state.withLock { state -> Int32? in
            swap(&state.pending, &spare)
            state.writing = !spare.isEmpty
            defer { state.replacement = nil }
            return state.replacement
        }
        if let replacement {
            let old = self.descriptor.exchange(replacement, ordering: .relaxed)
            if self.ownsDescriptor { close(old) }
        }
        guard !spare.isEmpty else { return }
        let unwritten = self.write(spare)
        spare.removeAll(keepingCapacity: true)
        self.state.withLock { state in
            state.droppedLines += unwritten
            state.writing = false
        }
    }

    /// Writes `bytes` whole, waiting while the descriptor is not ready.
    /// - Returns: the number of lines that could not be written (the descriptor failed).
    private func write(_ bytes: [UInt8]) -> Int {
        let descriptor = self.descriptor.load(ordering: .relaxed)
        return bytes.withUnsafeBytes { buffer -> Int in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                    continue
                }
                if written < 0 && errno == EINTR { continue }
                if written < 0 && errno == EAGAIN {
                    // Someone made the descriptor non-blocking (a shared terminal or pipe).
                    var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, 100)
                    continue
                }
                return buffer[offset...].reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            }
            return 0
        }
    }

    deinit {
        if self.ownsDescriptor { close(self.descriptor.load(ordering: .relaxed)) }
        if let replacement = self.state.withLock({ $0.replacement }) { close(replacement) }
    }

    /// A `TextOutputStream` for swift-log's `StreamLogHandler`: each `write` is one line.
    package var stream: Stream { Stream(writer: self) }

    package struct Stream: TextOutputStream, Sendable {
        let writer: LineWriter
        package mutating func write(_ string: String) { self.writer.append(string.utf8) }
    }
}
