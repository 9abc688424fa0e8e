import Foundation
package import PortcullisCore
#if canImport(Glibc)
import Glibc
#endif

/// One JSON line per request (contract §8) and per decision of the decision service (§11), written off the event loops by a ``LineWriter``:
/// a target that stalls (stdout piped to a reader that stopped) costs dropped, counted lines,
/// never memory without bound or a waiting event loop.
///
/// Never logged: the query string (it may carry an API key or a misplaced token), header
/// values, `Authorization`, cookies, passwords.
package final class AccessLog: Sendable {
    private let writer: LineWriter
    /// The file, for ``reopen()``; nil for standard output.
    private let path: String?

    /// 8 MiB of lines can wait for the target: at 20,000 requests/s, about a second and a half.
    static let capacity = 8 << 20

    /// `nil` for `access_log: off`.
    package init?(_ target: AccessLogTarget) throws {
        switch target {
        case .off:
            return nil
        case .stdout:
            self.writer = LineWriter(descriptor: 1, ownsDescriptor: false, capacity: Self.capacity, threadName: "portcullis-access-log")
            self.path = nil
        case .file(let path):
            self.writer = LineWriter(
                descriptor: try Self.open(path), ownsDescriptor: true, capacity: Self.capacity, threadName: "portcullis-access-log")
            self.path = path
        }
    }

    private static func open(_ path: String) throws(AccessLogError) -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw AccessLogError(path: path, errno: errno) }
        return descriptor
    }

    /// Opens the file again by its name (after logrotate moved it away: SIGUSR1 or SIGHUP).
    /// Lines buffered meanwhile go to the new file; if it cannot be opened, the old one stays.
    /// - Returns: the file's path, or nil when logging to standard output.
    @discardableResult
    package func reopen() throws(AccessLogError) -> String? {
        guard let path = self.path else { return nil }
        self.writer.reopen(try Self.open(path))
        return path
    }

    /// Lines lost because the target did not keep up or refused them.
    package var droppedLines: Int { self.writer.droppedLines }

    /// Waits, at most `timeout`, for the buffered lines to be written (at shutdown).
    /// - Returns: whether everything was written.
    @discardableResult
    package func flush(timeout: Duration) -> Bool { self.writer.flush(timeout: timeout) }

    /// Waits, at most `timeout`, for the buffered lines to be written, suspending between checks
    /// rather than holding a thread of the cooperative pool.
    /// - Returns: whether everything was written.
    func flush(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !self.writer.flush(timeout: .zero) {
            let now = ContinuousClock.now
            if now >= deadline { return false }
            do {
                try await Task.sleep(for: .milliseconds(2))
            } catch {
                // Cancelled: the lines still deserve the rest of their time.
                return self.writer.flush(timeout: deadline - now)
            }
        }
        return true
    }

    package struct AccessLogError: Error, CustomStringConvertible {
        var path: String
        var errno: Int32
        package var description: String { "cannot open the access log \(self.path): \(String(cString: strerror(self.errno)))" }
    }

    package struct Entry {
        var requestID: String
        var client: String
        var method: String
        var path: String
        var route: String?
        var decision: DecisionLabel
        var status: Int
        var subject: String?
        var durationMilliseconds: Double
        var upstreamMilliseconds: Double?
        var bytes: Int
        var reason: Reason?
        var upstreamStatus: Int?
        /// Shadow mode: the gateway's own answer, and why, when the request was not answered
        /// by the upstream as forwarded.
        var sentStatus: Int?
        var sentReason: Reason?
        /// `decisions` for the decision service's lines; absent on the public listener's.
        var listener: String?
    }

    func record(_ entry: Entry) {
        var line = "{\"time\":\"\(Self.timestamp())\",\"request_id\":\(JSONText.string(entry.requestID))"
        line += ",\"client\":\(JSONText.string(entry.client)),\"method\":\(JSONText.string(entry.method))"
        line += ",\"path\":\(JSONText.string(entry.path)),\"route\":\(entry.route.map(JSONText.string) ?? "null")"
        line += ",\"decision\":\"\(entry.decision.rawValue)\",\"status\":\(entry.status)"
        if let subject = entry.subject { line += ",\"subject\":\(JSONText.string(subject))" }
        line += ",\"duration_ms\":\(Self.round(entry.durationMilliseconds))"
        if let upstream = entry.upstreamMilliseconds { line += ",\"upstream_ms\":\(Self.round(upstream))" }
        line += ",\"bytes\":\(entry.bytes)"
        if let reason = entry.reason { line += ",\"reason\":\"\(reason.rawValue)\"" }  // reasons need no escaping
        if let upstreamStatus = entry.upstreamStatus { line += ",\"upstream_status\":\(upstreamStatus)" }
        if let sentStatus = entry.sentStatus { line += ",\"sent_status\":\(sentStatus)" }
        if let sentReason = entry.sentReason { line += ",\"sent_reason\":\"\(sentReason.rawValue)\"" }
        if let listener = entry.listener { line += ",\"listener\":\(JSONText.string(listener))" }
        line += "}\n"
        self.writer.append(line.utf8)
    }

    private static func round(_ value: Double) -> String {
        let scaled = (value * 1000).rounded() / 1000
        return String(scaled)
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}

/// A monotonic clock for durations.
enum MonotonicClock {
    static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    static func milliseconds(since start: UInt64) -> Double {
        Double(Self.nanoseconds() &- start) / 1_000_000
    }
}
