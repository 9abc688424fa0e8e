import PortcullisCore
import Prometheus
import Synchronization

/// The gateway's Prometheus series. The registry keeps one instance per label set, so a
/// series labelled by route, decision and status is created on first use and found again after.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "portcullis", metricName: metric, unitName: unit, helpText: help)
    }

    // MetricNameDescriptor is a struct of `let`s that the package does not mark Sendable.
    nonisolated(unsafe) private static let requests = name(
        "requests", "total", "Requests by route, decision (allow, deny, would_deny), status and reason.")
    nonisolated(unsafe) private static let duration = name("request_duration", "seconds", "Time from the request head to the end of the response.")
    nonisolated(unsafe) private static let decisions = name(
        "decisions", "total", "Decision service answers by route, decision (allow, deny, would_deny) and the status decided.")
    nonisolated(unsafe) private static let decisionDuration = name(
        "decision_duration", "seconds", "Time from a decision request's head to its answer.")
    nonisolated(unsafe) private static let upstreamDuration = name("upstream_duration", "seconds", "Time from starting the upstream exchange to its response head.")
    nonisolated(unsafe) private static let upstreamErrors = name("upstream_errors", "total", "Upstream failures by kind.")
    nonisolated(unsafe) private static let keySetFetches = name("jwks_refreshes", "total", "Key set fetches by issuer and result.")
    nonisolated(unsafe) private static let tokens = name("tokens_issued", "total", "Access tokens issued by the token endpoint.")
    nonisolated(unsafe) private static let loginFailures = name("login_failures", "total", "Failed logins (token endpoint, Basic routes, API keys) by reason.")
    nonisolated(unsafe) private static let reloads = name("config_reloads", "total", "Configuration reloads by result.")
    nonisolated(unsafe) private static let storeErrors = name(
        "store_errors", "total", "Failed operations on the token store (unreachable or failing), by operation.")
    nonisolated(unsafe) private static let droppedLines = name(
        "log_dropped_lines", "total", "Log lines dropped because their target (access log, stderr) did not keep up.")
    nonisolated(unsafe) private static let connectionTimeouts = name(
        "connection_timeouts", "total", "Client connections closed by request_header_timeout or idle_timeout.")
    /// The writers' dropped-line counts at the last scrape, to turn totals into increments.
    private let droppedSeen = Mutex<[String: Int]>([:])
    private static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    init() {
        // Present from the start: a rate or an alert on a series needs it before its first event.
        let known: [(MetricNameDescriptor, label: String, values: [String])] = [
            (Self.reloads, "result", ["success", "failure"]),
            (Self.droppedLines, "log", ["access", "stderr"]),
            (Self.connectionTimeouts, "kind", ["request_header", "idle"]),
            (Self.upstreamErrors, "kind", ["bad_gateway", "timeout", "request_body"]),
            (Self.storeErrors, "operation", Self.storeOperations),
            (
                Self.loginFailures, "reason",
                ["bad_credentials", "bad_api_key", "invalid_client", "inactive_user", "refresh_reuse", "throttled"]
            ),
        ]
        for (descriptor, label, values) in known {
            for value in values { _ = self.registry.makeCounter(descriptor: descriptor, labels: [(label, value)]) }
        }
        _ = self.registry.makeCounter(descriptor: Self.tokens)
    }

    /// The series one kind of request is counted in: fetched from the registry once per
    /// connection and label set (see ``RequestSeriesCache``), since a registry lookup rebuilds
    /// the metric name and takes a lock.
    struct RequestSeries {
        let requests: Counter
        let duration: ValueHistogram
    }

    struct SeriesKey: Hashable {
        var route: String?
        var decision: DecisionLabel
        var status: Int
        /// The decision service's answers are counted apart from the proxied requests.
        var decisionService = false
        var reason: Reason?
    }

    func series(_ key: SeriesKey) -> RequestSeries {
        let route = key.route ?? "-"
        return RequestSeries(
            requests: self.registry.makeCounter(
                descriptor: key.decisionService ? Self.decisions : Self.requests,
                labels: key.decisionService
                    ? [("route", route), ("decision", key.decision.rawValue), ("status", String(key.status))]
                    : [
                        ("route", route), ("decision", key.decision.rawValue), ("status", String(key.status)),
                        ("reason", key.reason?.rawValue ?? "-"),
                    ]),
            duration: self.registry.makeValueHistogram(
                descriptor: key.decisionService ? Self.decisionDuration : Self.duration, labels: [("route", route)],
                buckets: Self.latencyBuckets))
    }

    /// Made on a route's first upstream exchange, so routes that never reach an upstream (the
    /// token endpoint, a route that only refuses) have no series that stays empty forever.
    func upstreamHistogram(route: String?) -> ValueHistogram {
        self.registry.makeValueHistogram(
            descriptor: Self.upstreamDuration, labels: [("route", route ?? "-")], buckets: Self.latencyBuckets)
    }

    func upstreamError(kind: String) {
        self.registry.makeCounter(descriptor: Self.upstreamErrors, labels: [("kind", kind)]).increment()
    }

    func keySetFetch(issuer: String, succeeded: Bool) {
        self.registry.makeCounter(
            descriptor: Self.keySetFetches, labels: [("issuer", issuer), ("result", succeeded ? "success" : "failure")]
        ).increment()
    }

    func connectionTimedOut(kind: String) {
        self.registry.makeCounter(descriptor: Self.connectionTimeouts, labels: [("kind", kind)]).increment()
    }

    func tokenIssued() { self.registry.makeCounter(descriptor: Self.tokens).increment() }

    func loginFailure(reason: String) {
        self.registry.makeCounter(descriptor: Self.loginFailures, labels: [("reason", reason)]).increment()
    }

    /// What ``storeError(operation:)`` counts: writing a new token, rotating one, revoking a
    /// family, and sharing the login-throttle counts (PostgreSQL stores).
    static let storeOperations = ["issue", "redeem", "revoke", "throttle"]

    func storeError(operation: String) {
        self.registry.makeCounter(descriptor: Self.storeErrors, labels: [("operation", operation)]).increment()
    }

    func configReload(succeeded: Bool) {
        self.registry.makeCounter(descriptor: Self.reloads, labels: [("result", succeeded ? "success" : "failure")]).increment()
    }

    /// Brings `portcullis_log_dropped_lines_total` up to the writers' own totals (at each scrape:
    /// dropping a line must not take the registry's lock).
    func syncDroppedLines(_ totals: [(log: String, total: Int)]) {
        for (log, total) in totals {
            let increase = self.droppedSeen.withLock { seen in
                defer { seen[log] = max(seen[log] ?? 0, total) }
                return total - (seen[log] ?? 0)
            }
            guard increase > 0 else { continue }
            self.registry.makeCounter(descriptor: Self.droppedLines, labels: [("log", log)]).increment(by: Int64(increase))
        }
    }

    /// The Prometheus text exposition.
    func render() -> [UInt8] {
        var buffer: [UInt8] = []
        self.registry.emit(into: &buffer)
        return buffer
    }
}

/// A connection's own table of request series, so the registry is asked once per label set
/// per connection. Confined to the connection's event loop, so it needs no lock.
struct RequestSeriesCache {
    private var entries: [GatewayMetrics.SeriesKey: GatewayMetrics.RequestSeries] = [:]
    private var upstream: [String?: ValueHistogram] = [:]

    mutating func record(
        _ metrics: GatewayMetrics, route: String?, decision: DecisionLabel, status: Int, reason: Reason?, seconds: Double,
        upstreamSeconds: Double?, decisionService: Bool = false
    ) {
        let key = GatewayMetrics.SeriesKey(
            route: route, decision: decision, status: status, decisionService: decisionService, reason: reason)
        let series: GatewayMetrics.RequestSeries
        if let known = self.entries[key] {
            series = known
        } else {
            series = metrics.series(key)
            if self.entries.count < 64 { self.entries[key] = series }
        }
        series.requests.increment()
        series.duration.record(seconds)
        guard let upstreamSeconds else { return }
        if let histogram = self.upstream[route] {
            histogram.record(upstreamSeconds)
        } else {
            let histogram = metrics.upstreamHistogram(route: route)
            if self.upstream.count < 64 { self.upstream[route] = histogram }
            histogram.record(upstreamSeconds)
        }
    }
}
