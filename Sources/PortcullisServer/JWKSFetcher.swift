import Logging
import NIOCore
import PortcullisCore
import PortcullisUpstream
import Synchronization

/// Fetches issuers' `jwks_url` key sets (with `discovery`, the discovery document first, then
/// the `jwks_uri` it names) with the gateway's libcurl driver: on the schedule of
/// ``JWKSRefreshService``, and on demand when a token names an unknown `kid`. A failed fetch
/// keeps the last good set. There is at most one fetch per set at a time: asking for another
/// while one is under way waits for it.
final class JWKSFetcher: Sendable {
    /// A key set larger than this is refused.
    static let maximumDocumentBytes = 1 << 20
    static let fetchTimeoutMilliseconds: Int64 = 5_000

    private let curl: CurlMulti
    private let logger: Logger
    private let metrics: GatewayMetrics
    /// The completions waiting on each set's fetch under way.
    private let inFlight = Mutex<[ObjectIdentifier: [@Sendable (Bool) -> Void]]>([:])

    init(curl: CurlMulti, logger: Logger, metrics: GatewayMetrics) {
        self.curl = curl
        self.logger = logger
        self.metrics = metrics
    }

    /// The fetch of ``JWKSRefreshService``'s schedule: fetches `set` once, or joins the fetch
    /// of it under way, as ``fetch(_:reason:completion:)`` does. A cancelled caller stops waiting
    /// at once (with `false`); the fetch itself runs on.
    /// - Returns: whether a good key set was installed.
    func scheduledFetch(_ set: RemoteKeySet) async -> Bool {
        let outcome = FetchOutcome()
        self.fetch(set, reason: "scheduled") { outcome.resolve($0) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { outcome.wait($0) }
        } onCancel: {
            outcome.resolve(false)
        }
    }

    /// For a token naming a `kid` the set lacks: waits for the set's fetch under way, or starts
    /// one if the on-demand rate limit allows. `false` when neither, and `completion` never runs.
    func fetchForUnknownKid(_ set: RemoteKeySet, now: Double, completion: @escaping @Sendable (Bool) -> Void) -> Bool {
        if self.wait(for: set, completion, startingOne: false) == .joined { return true }
        guard set.claimOnDemandFetch(now: now) else { return false }
        self.fetch(set, reason: "unknown kid", completion: completion)
        return true
    }

    private enum Waiting { case joined, started, neither }

    /// Adds `completion` to the waiters of `set`'s fetch under way; with none under way, makes
    /// it the first waiter of a new one when `startingOne`.
    private func wait(for set: RemoteKeySet, _ completion: @escaping @Sendable (Bool) -> Void, startingOne: Bool) -> Waiting {
        self.inFlight.withLock { flights in
            let id = ObjectIdentifier(set)
            if flights[id] != nil {
                flights[id]!.append(completion)
                return .joined
            }
            guard startingOne else { return .neither }
            flights[id] = [completion]
            return .started
        }
    }

    /// Fetches `set` once, or joins the fetch of it under way, and installs the document if it
    /// is good. `completion` runs on the curl thread.
    func fetch(_ set: RemoteKeySet, reason: String, completion: @escaping @Sendable (Bool) -> Void) {
        guard self.wait(for: set, completion, startingOne: true) == .started else { return }
        let id = ObjectIdentifier(set)
        let completion: @Sendable (Bool) -> Void = { [self] succeeded in
            let waiting = self.inFlight.withLock { $0.removeValue(forKey: id) } ?? []
            for waiter in waiting { waiter(succeeded) }
        }
        guard set.discovery else { return self.fetchKeys(set, from: set.url, reason: reason, completion: completion) }
        // The discovery document is read again on every fetch: a provider that moves its keys
        // says so there.
        self.get(set.url) { [self] result in
            switch result {
            case .success(let document):
                switch set.acceptDiscovery(document) {
                case .success(let keySetURL):
                    self.fetchKeys(set, from: keySetURL, reason: reason, completion: completion)
                case .failure(let error):
                    self.metrics.keySetFetch(issuer: set.issuer, succeeded: false)
                    self.logger.warning(
                        "discovery document refused; the issuer's keys stay as they were",
                        metadata: ["issuer": "\(set.issuer)", "url": "\(RemoteKeySet.redacted(set.url))", "error": "\(error)"])
                    completion(false)
                }
            case .failure(let message):
                self.metrics.keySetFetch(issuer: set.issuer, succeeded: false)
                self.logger.warning(
                    "discovery document fetch failed; the issuer's keys stay as they were",
                    metadata: ["issuer": "\(set.issuer)", "url": "\(RemoteKeySet.redacted(set.url))", "error": "\(message)"])
                completion(false)
            }
        }
    }

    /// GETs a small JSON document; `completion` runs on the curl thread.
    private func get(_ url: String, completion: @escaping @Sendable (Result<[UInt8], DocumentCollector.FetchError>) -> Void) {
        var headers = UpstreamHeaderLines()
        headers.append(name: "Accept", value: "application/json")
        let request = UpstreamRequest(
            url: url, method: "GET", headers: headers, body: .none,
            connectTimeoutMilliseconds: 2_000, timeoutMilliseconds: Self.fetchTimeoutMilliseconds)
        _ = self.curl.start(request, handler: DocumentCollector(limit: Self.maximumDocumentBytes, completion: completion))
    }

    /// Fetches the key set at `url` and installs it if it is good.
    private func fetchKeys(_ set: RemoteKeySet, from url: String, reason: String, completion: @escaping @Sendable (Bool) -> Void) {
        self.get(url) { [logger = self.logger, metrics = self.metrics] result in
            switch result {
            case .success(let document):
                do {
                    let skipped = try set.install(document)
                    metrics.keySetFetch(issuer: set.issuer, succeeded: true)
                    logger.info("key set fetched", metadata: ["issuer": "\(set.issuer)", "keys": "\(set.keys.count)", "reason": "\(reason)"])
                    if !skipped.isEmpty {
                        logger.warning(
                            "key set has keys the gateway cannot use; they are left out",
                            metadata: ["issuer": "\(set.issuer)", "url": "\(set.displayURL)", "skipped": "\(skipped.joined(separator: "; "))"])
                    }
                    completion(true)
                } catch {
                    metrics.keySetFetch(issuer: set.issuer, succeeded: false)
                    logger.warning(
                        "key set rejected; keeping the previous one",
                        metadata: ["issuer": "\(set.issuer)", "url": "\(set.displayURL)", "error": "\(error)"])
                    completion(false)
                }
            case .failure(let message):
                metrics.keySetFetch(issuer: set.issuer, succeeded: false)
                logger.warning(
                    "key set fetch failed; keeping the previous one",
                    metadata: ["issuer": "\(set.issuer)", "url": "\(set.displayURL)", "error": "\(message)"])
                completion(false)
            }
        }
    }
}

/// The first answer of one fetch, for a task that waits for it: the fetch's completion or the
/// task's cancellation, whichever comes first; the other is ignored.
private final class FetchOutcome: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<Bool, Never>)
        case resolved(Bool)
    }

    private let state = Mutex(State.pending)

    func wait(_ continuation: CheckedContinuation<Bool, Never>) {
        let resolved = self.state.withLock { state -> Bool? in
            guard case .resolved(let value) = state else {
                state = .waiting(continuation)
                return nil
            }
            return value
        }
        if let resolved { continuation.resume(returning: resolved) }
    }

    func resolve(_ value: Bool) {
        let waiting = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
            switch state {
            case .pending:
                state = .resolved(value)
                return nil
            case .waiting(let continuation):
                state = .resolved(value)
                return continuation
            case .resolved:
                return nil
            }
        }
        waiting?.resume(returning: value)
    }
}

/// Collects a small response body in memory, for key sets. Called on the curl thread only.
private final class DocumentCollector: UpstreamResponseHandler, @unchecked Sendable {  // curl thread only
    private let limit: Int
    private let completion: @Sendable (Result<[UInt8], FetchError>) -> Void
    private var status = 0
    private var body: [UInt8] = []
    private var tooLarge = false

    struct FetchError: Error, CustomStringConvertible {
        var description: String
    }

    init(limit: Int, completion: @escaping @Sendable (Result<[UInt8], FetchError>) -> Void) {
        self.limit = limit
        self.completion = completion
    }

    func upstreamResponseHead(_ head: UpstreamResponseHead) { self.status = head.status }

    func upstreamResponseBody(_ bytes: ByteBuffer) {
        if self.body.count + bytes.readableBytes > self.limit {
            self.tooLarge = true
        } else {
            self.body.append(contentsOf: bytes.readableBytesView)
        }
    }

    func upstreamWantsRequestBody() {}

    var consumesBodySynchronously: Bool { true }

    func upstreamFinished(_ error: UpstreamError?) {
        if let error {
            self.completion(.failure(FetchError(description: "\(error)")))
        } else if self.status != 200 {
            self.completion(.failure(FetchError(description: "HTTP status \(self.status)")))
        } else if self.tooLarge {
            self.completion(.failure(FetchError(description: "larger than \(self.limit) bytes")))
        } else {
            self.completion(.success(self.body))
        }
    }
}
