import PortcullisCore

/// What the access log line and the metrics of one request need, gathered as it is handled.
struct RequestLogContext {
    var requestID = ""
    /// The client's address: the peer's, or from a trusted proxy's `X-Forwarded-For`.
    var client = ""
    var method = ""
    /// The request target as received; the log line shows it through ``pathForLog(_:)``,
    /// worked out only when there is a log to write.
    var target = ""
    var start: UInt64 = 0
    var route: String?
    var subject: String?
    var upstreamStart: UInt64 = 0
    var upstreamMilliseconds: Double?
    var status = 0
    /// `status` is the upstream's (not an answer of the gateway's own).
    var statusFromUpstream = false
    var bytes = 0
    var logged = true
    /// Shadow mode: the status and reason of the refusal that was not enforced.
    var wouldDeny: (status: Int, reason: Reason)?
    /// The request came to the decision service (its answer is not the upstream's).
    var decisionService = false
    /// The status sent, when it is not `status` (the decision service sends a 404 as a 403).
    var sentStatus: Int?

    /// Counts the request in the metrics and writes its access-log line, once.
    mutating func finish(decision: DecisionLabel, reason: Reason?, environment: GatewayEnvironment, series: inout RequestSeriesCache) {
        guard !self.logged else { return }
        self.logged = true
        let entry = self
        let seconds = MonotonicClock.milliseconds(since: entry.start) / 1000
        series.record(
            environment.metrics, route: entry.route, decision: entry.wouldDeny == nil ? decision : .wouldDeny,
            status: entry.wouldDeny?.status ?? entry.status, reason: entry.wouldDeny?.reason ?? reason, seconds: seconds,
            upstreamSeconds: entry.upstreamMilliseconds.map { $0 / 1000 }, decisionService: entry.decisionService)
        guard let log = environment.accessLog else { return }
        var decision = decision
        var status = entry.status
        var reason = reason
        var upstreamStatus: Int?
        var sent: (status: Int?, reason: Reason?)?
        if let wouldDeny = entry.wouldDeny {
            // The line of a shadowed request carries the status that enforcement would have sent,
            // and what happened instead: the upstream's answer, or one of the gateway's own (a
            // 413, a 504, a client that left), which is never passed off as the upstream's.
            decision = .wouldDeny
            if entry.statusFromUpstream {
                upstreamStatus = status
                if reason != nil { sent = (nil, reason) }
            } else {
                sent = (status == 0 ? nil : status, reason)
            }
            status = wouldDeny.status
            reason = wouldDeny.reason
        } else if let sentStatus = entry.sentStatus {
            sent = (sentStatus, nil)
        }
        log.record(
            AccessLog.Entry(
                requestID: entry.requestID, client: entry.client, method: entry.method, path: Self.pathForLog(entry.target), route: entry.route,
                decision: decision, status: status, subject: entry.subject,
                durationMilliseconds: MonotonicClock.milliseconds(since: entry.start),
                upstreamMilliseconds: entry.upstreamMilliseconds, bytes: entry.bytes, reason: reason,
                upstreamStatus: upstreamStatus, sentStatus: sent?.status, sentReason: sent?.reason,
                listener: entry.decisionService ? Listener.decisions.rawValue : nil))
    }

    /// The target as the access log shows it: without query or fragment, which may carry keys,
    /// and, in absolute form, without the userinfo (`user:password@`) of its authority.
    static func pathForLog(_ uri: String) -> String {
        var text = Substring(uri)
        if let mark = text.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            text = text[..<mark]
        }
        // scheme "://" authority: only absolute-form targets have one.
        guard text.utf8.first != UInt8(ascii: "/"), let colon = text.firstIndex(of: ":"),
            text[colon...].hasPrefix("://")
        else { return String(text) }
        let authorityStart = text.index(colon, offsetBy: 3)
        let authorityEnd = text[authorityStart...].firstIndex(of: "/") ?? text.endIndex
        guard let at = text[authorityStart..<authorityEnd].lastIndex(of: "@") else { return String(text) }
        return String(text[..<authorityStart]) + String(text[text.index(after: at)...])
    }
}
