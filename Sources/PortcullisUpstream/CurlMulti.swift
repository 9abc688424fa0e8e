internal import CPortcullisCurl
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// glibc's `pthread_setname_np`, which its headers declare only under `_GNU_SOURCE`.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> CInt
package import Logging
import NIOCore
import Synchronization

/// Runs libcurl's multi interface on one dedicated thread, with connections to each upstream
/// kept alive and reused across requests. The gateway runs one per event loop (``CurlPool``):
/// each carries the exchanges of its loop's connections, with a connection pool of its own.
///
/// The thread drives curl through its socket interface (`curl_multi_socket_action`) over an
/// epoll set of its own: curl says which sockets it wants watched and when its next timeout
/// is, and the loop tells curl about exactly the sockets that became ready. Work per wake-up
/// is proportional to what happened, not to the number of transfers or pooled connections.
///
/// Other threads never call curl. They append a ``Command`` to the inbox under a mutex and,
/// when the inbox was empty, write to an eventfd in the epoll set; the loop takes the whole
/// inbox at once and applies it. Nothing on an event loop ever blocks on curl.
package final class CurlMulti: @unchecked Sendable {  // everything but `inbox`, `wakeFD`: curl thread only
    package enum Command: Sendable {
        case start(UpstreamTransfer)
        case unpause(UpstreamTransfer)
        case cancel(UpstreamTransfer)
        case shutdown
    }

    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex<[Command]>([])
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var running = 0
    private let logger: Logger
    /// The thread's name, as `top -H` and `/proc/PID/task/*/comm` show it (at most 15 bytes).
    package let threadName: String
    private let stopped = Mutex(false)
    private let epollFD: Int32
    private let wakeFD: Int32
    private struct SocketState {
        /// The events registered in the epoll set; 0 when not registered.
        var events: UInt32 = 0
        /// curl currently wants to hear about this socket.
        var wanted = false
        /// Opened by ``openSocket(family:type:protocol:)``: its close goes through ``closeSocket(_:)``.
        var owned = false
    }
    /// Indexed by socket number.
    private var sockets: [SocketState] = []
    /// When curl wants `CURL_SOCKET_TIMEOUT`, in `CLOCK_MONOTONIC` milliseconds; nil for never.
    private var timerDeadline: Int64?

    private static let globalInit: Bool = {
        curl_global_init(PC_CURL_GLOBAL_DEFAULT) == CURLE_OK
    }()

    /// Starts the curl thread.
    /// - Parameters:
    ///   - threadName: what the thread is called; Linux keeps the first 15 bytes.
    ///   - maxIdleConnections: upstream connections this handle keeps open between requests.
    package init(logger: Logger, threadName: String = "curl-1", maxIdleConnections: Int = 256) {
        precondition(Self.globalInit, "libcurl failed to initialize")
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        self.multi = multi
        self.logger = logger
        self.threadName = threadName
        self.epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        self.wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(self.epollFD >= 0 && self.wakeFD >= 0, "epoll_create1 or eventfd failed: errno \(errno)")
        precondition(pc_epoll_control(self.epollFD, PC_EPOLL_CTL_ADD, self.wakeFD, PC_EPOLLIN) == 0, "epoll_ctl failed")
        _ = pc_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxIdleConnections)
        let unretained = Unmanaged.passUnretained(self).toOpaque()  // the thread keeps `self` alive
        _ = pc_curl_multi_setopt_socket(multi, curlSocketThunk)
        _ = pc_curl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, unretained)
        _ = pc_curl_multi_setopt_timer(multi, curlTimerThunk)
        _ = pc_curl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, unretained)
        let thread = Thread { [self] in self.run() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Begins an exchange. Events arrive on `handler`, from the curl thread.
    package func start(_ request: UpstreamRequest, handler: any UpstreamResponseHandler) -> UpstreamTransfer {
        let transfer = UpstreamTransfer(request: request, handler: handler, multi: self)
        self.submit(.start(transfer))
        return transfer
    }

    package func submit(_ command: Command) {
        let wasEmpty = self.inbox.withLock { inbox in
            defer { inbox.append(command) }
            return inbox.isEmpty
        }
        // A non-empty inbox has a wake-up on its way already: the loop takes the whole inbox
        // after it reads the eventfd.
        if wasEmpty {
            var one: UInt64 = 1
            _ = write(self.wakeFD, &one, 8)
        }
    }

    /// Stops the loop after cancelling what is still running. Returns at once.
    package func shutdown() { self.submit(.shutdown) }

    // MARK: the curl thread

    private func run() {
        // Names the thread for top -H, perf and /proc, with the system call itself: Foundation's
        // own naming of a new thread can land after an assignment to `Thread.current.name`.
        _ = setThreadName(pthread_self(), String(decoding: self.threadName.utf8.prefix(15), as: UTF8.self))
        // Every request wakes this thread, and every upstream reply too. Under the default
        // policy each wake-up preempts the event loop on a shared core, so the two threads take
        // turns request by request (two context switches each). Under SCHED_BATCH the loop
        // finishes what it has read first, and this thread then takes all of it in one turn.
        // With a 60 µs signature check per request, that was a third of the gateway's CPU time
        // (bench/README.md). On an otherwise idle core it changes nothing.
        ThreadScheduling.preferThroughput()
        var pending: [Command] = []
        var shuttingDown = false
        var readyFDs = [Int32](repeating: 0, count: 64)
        var readyEvents = [UInt32](repeating: 0, count: 64)
        var stillRunning: Int32 = 0
        while !shuttingDown {
            let count = readyFDs.withUnsafeMutableBufferPointer { fds in
                readyEvents.withUnsafeMutableBufferPointer { events in
                    pc_epoll_wait(self.epollFD, fds.baseAddress, events.baseAddress, 64, self.waitMilliseconds())
                }
            }
            var woken = false
            for index in 0..<max(0, Int(count)) {
                let fd = readyFDs[index]
                if fd == self.wakeFD {
                    woken = true
                    continue
                }
                if Int(fd) >= self.sockets.count || !self.sockets[Int(fd)].wanted {
                    self.forget(fd)
                    continue
                }
                let events = readyEvents[index]
                var flags: Int32 = 0
                if events & PC_EPOLLIN != 0 { flags |= PC_CURL_CSELECT_IN }
                if events & PC_EPOLLOUT != 0 { flags |= PC_CURL_CSELECT_OUT }
                if events & (PC_EPOLLERR | PC_EPOLLHUP) != 0 { flags |= PC_CURL_CSELECT_ERR }
                curl_multi_socket_action(self.multi, fd, flags, &stillRunning)
            }
            if woken {
                var counter: UInt64 = 0
                _ = read(self.wakeFD, &counter, 8)
                self.inbox.withLock { swap(&$0, &pending) }
                for command in pending {
                    switch command {
                    case .start(let transfer): self.begin(transfer)
                    case .unpause(let transfer):
                        if let easy = transfer.easy, !transfer.finished { curl_easy_pause(easy, PC_CURLPAUSE_CONT) }
                    case .cancel(let transfer):
                        if transfer.easy != nil && !transfer.finished {
                            self.finish(transfer, error: UpstreamError(kind: .cancelled, curlCode: 0, message: "cancelled"))
                        }
                    case .shutdown: shuttingDown = true
                    }
                }
                pending.removeAll(keepingCapacity: true)
            }
            if let deadline = self.timerDeadline, deadline <= Self.monotonicMilliseconds() {
                self.timerDeadline = nil
                curl_multi_socket_action(self.multi, PC_CURL_SOCKET_TIMEOUT, 0, &stillRunning)
            }
            self.drainCompleted()
        }
        self.stopped.withLock { $0 = true }
    }

    /// How long epoll may sleep: until curl's timer, and at most a second.
    private func waitMilliseconds() -> Int32 {
        guard let deadline = self.timerDeadline else { return 1000 }
        return Int32(clamping: min(1000, max(0, deadline - Self.monotonicMilliseconds())))
    }

    private static func monotonicMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// curl's socket callback: watch `fd` for what curl wants, or stop watching it.
    ///
    /// A socket of our own making (``openSocket(family:type:protocol:)``) that curl stops
    /// watching stays in the epoll set: curl does that to every pooled connection between two
    /// requests and takes it back for the next one, and leaving it registered saves two
    /// `epoll_ctl` calls per request. Should it become ready meanwhile (the upstream closed it),
    /// the loop removes it then; it leaves the set for good in ``closeSocket(_:)``. Other
    /// sockets (the resolver's) are closed by curl directly, so they leave the set at once.
    fileprivate func watch(_ fd: Int32, _ what: Int32) {
        guard fd >= 0 else { return }
        self.ensureSocketState(for: fd)
        let index = Int(fd)
        if what == PC_CURL_POLL_REMOVE {
            self.sockets[index].wanted = false
            if !self.sockets[index].owned { self.forget(fd) }
            return
        }
        var events: UInt32 = 0
        if what == PC_CURL_POLL_IN || what == PC_CURL_POLL_INOUT { events |= PC_EPOLLIN }
        if what == PC_CURL_POLL_OUT || what == PC_CURL_POLL_INOUT { events |= PC_EPOLLOUT }
        self.sockets[index].wanted = true
        let current = self.sockets[index].events
        if current == events { return }
        if pc_epoll_control(self.epollFD, current == 0 ? PC_EPOLL_CTL_ADD : PC_EPOLL_CTL_MOD, fd, events) == 0 {
            self.sockets[index].events = events
        } else {
            self.logger.error("epoll_ctl failed for an upstream socket", metadata: ["errno": "\(errno)"])
        }
    }

    private func ensureSocketState(for fd: Int32) {
        if Int(fd) >= self.sockets.count {
            self.sockets.append(contentsOf: repeatElement(SocketState(), count: Int(fd) + 64 - self.sockets.count))
        }
    }

    /// Takes `fd` out of the epoll set.
    private func forget(_ fd: Int32) {
        let index = Int(fd)
        guard index < self.sockets.count, self.sockets[index].events != 0 else { return }
        _ = pc_epoll_control(self.epollFD, PC_EPOLL_CTL_DEL, fd, 0)
        self.sockets[index].events = 0
    }

    /// curl's open-socket callback, for every upstream connection: the socket is marked as
    /// ours, so that ``closeSocket(_:)`` sees it closed.
    fileprivate func openSocket(family: Int32, type: Int32, protocol: Int32) -> Int32 {
        let fd = socket(family, type | Int32(SOCK_CLOEXEC.rawValue), `protocol`)
        guard fd >= 0 else { return fd }
        self.ensureSocketState(for: fd)
        self.sockets[Int(fd)] = SocketState(owned: true)
        return fd
    }

    /// curl's close-socket callback: the socket leaves the epoll set before it is closed, so
    /// that a new socket given the same number starts unregistered.
    fileprivate func closeSocket(_ fd: Int32) -> Int32 {
        self.forget(fd)
        if Int(fd) < self.sockets.count { self.sockets[Int(fd)] = SocketState() }
        return close(fd)
    }

    /// curl's timer callback: -1 cancels the timer, 0 asks for a timeout action at once.
    fileprivate func setTimer(milliseconds: Int) {
        self.timerDeadline = milliseconds < 0 ? nil : Self.monotonicMilliseconds() + Int64(milliseconds)
    }

    private func drainCompleted() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(self.multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            var raw: UnsafeMutableRawPointer?
            _ = pc_curl_getinfo_pointer(easy, CURLINFO_PRIVATE, &raw)
            guard let raw else { continue }
            let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(raw).takeUnretainedValue()
            if code == CURLE_OK && !transfer.deliveredHead {
                // libcurl reports success for a connection closed in the middle of the head:
                // there is no response to forward.
                self.finish(
                    transfer, error: UpstreamError(kind: .badGateway, curlCode: 0, message: "the upstream closed before its response head was complete"))
            } else if code == CURLE_OK {
                self.finish(transfer, error: nil)
            } else {
                var error = UpstreamError(curlCode: code, cancelled: transfer.isCancelled)
                if let reason = transfer.rejectedHead { error.message = "refused the upstream's response: \(reason)" }
                self.finish(transfer, error: error)
            }
        }
    }

    /// A new easy handle with the options every transfer shares (``configure(_:)``).
    private func makeHandle() -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else { return nil }
        guard self.configure(easy) else {
            curl_easy_cleanup(easy)
            return nil
        }
        return easy
    }

    /// Sets the options that are the same for every transfer. They stay on a recycled handle,
    /// so a transfer sets only what is its own (``begin(_:)``) and ``finish(_:error:)`` puts
    /// back only that.
    private func configure(_ easy: UnsafeMutableRawPointer) -> Bool {
        var ok = true
        func set(_ result: CURLcode) { if result != CURLE_OK { ok = false } }
        let unretained = Unmanaged.passUnretained(self).toOpaque()
        set(pc_curl_setopt_opensocket(easy, curlOpenSocketThunk))
        set(pc_curl_setopt_pointer(easy, CURLOPT_OPENSOCKETDATA, unretained))
        set(pc_curl_setopt_closesocket(easy, curlCloseSocketThunk))
        set(pc_curl_setopt_pointer(easy, CURLOPT_CLOSESOCKETDATA, unretained))
        set(pc_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        set(pc_curl_setopt_long(easy, CURLOPT_PATH_AS_IS, 1))
        set(pc_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1))
        // Never use a proxy from the environment: the upstream is what the config says.
        set(pc_curl_setopt_string(easy, CURLOPT_PROXY, ""))
        set(pc_curl_setopt_long(easy, CURLOPT_HTTP_CONTENT_DECODING, 0))
        set(pc_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))
        set(pc_curl_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS)))
        set(pc_curl_setopt_write(easy, CURLOPT_HEADERFUNCTION, curlHeaderThunk))
        set(pc_curl_setopt_write(easy, CURLOPT_WRITEFUNCTION, curlWriteThunk))
        set(pc_curl_setopt_read(easy, CURLOPT_READFUNCTION, curlReadThunk))
        return ok
    }

    /// Whether a transfer set options that ``finish(_:error:)`` does not put back one by one:
    /// its handle goes through `curl_easy_reset` and ``configure(_:)`` instead.
    private static func needsFullReset(_ request: UpstreamRequest) -> Bool {
        request.unixSocketPath != nil || request.caFile != nil || request.clientCertFile != nil
            || request.clientKeyFile != nil
    }

    private func begin(_ transfer: UpstreamTransfer) {
        let easy = self.idleHandles.popLast() ?? self.makeHandle()
        guard let easy else {
            transfer.finished = true
            transfer.handler.upstreamFinished(UpstreamError(kind: .badGateway, curlCode: 0, message: "curl_easy_init failed"))
            return
        }
        transfer.easy = easy
        let retained = Unmanaged.passRetained(transfer)  // curl's +1 until `finish`
        transfer.retainedByCurl = retained
        let request = transfer.request
        var ok = true
        func set(_ result: CURLcode) { if result != CURLE_OK { ok = false } }

        let opaque = retained.toOpaque()
        set(pc_curl_setopt_pointer(easy, CURLOPT_PRIVATE, opaque))
        set(pc_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, opaque))
        set(pc_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, opaque))
        set(pc_curl_setopt_pointer(easy, CURLOPT_READDATA, opaque))
        set(pc_curl_setopt_string(easy, CURLOPT_URL, request.url))
        set(pc_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeoutMilliseconds)))
        set(pc_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(request.timeoutMilliseconds)))
        if let path = request.unixSocketPath { set(pc_curl_setopt_string(easy, CURLOPT_UNIX_SOCKET_PATH, path)) }
        if let file = request.caFile { set(pc_curl_setopt_string(easy, CURLOPT_CAINFO, file)) }
        if let file = request.clientCertFile { set(pc_curl_setopt_string(easy, CURLOPT_SSLCERT, file)) }
        if let file = request.clientKeyFile { set(pc_curl_setopt_string(easy, CURLOPT_SSLKEY, file)) }

        // libcurl names the method after the last option that implies one (NOBODY is HEAD,
        // UPLOAD is PUT): a body on a HEAD would go out as a PUT. The server never asks for
        // that; should it, the transfer fails rather than send another method than it was given.
        if request.method == "HEAD" && request.body != .none { ok = false }
        switch request.method {
        case "GET" where request.body == .none:
            break
        case "HEAD":
            set(pc_curl_setopt_long(easy, CURLOPT_NOBODY, 1))
        default:
            set(pc_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method))
        }
        switch request.body {
        case .none:
            break
        case .length(let length):
            set(pc_curl_setopt_long(easy, CURLOPT_UPLOAD, 1))
            set(pc_curl_setopt_offset(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)))
        case .streamed:
            set(pc_curl_setopt_long(easy, CURLOPT_UPLOAD, 1))
            set(pc_curl_setopt_offset(easy, CURLOPT_INFILESIZE_LARGE, -1))
        }

        let block = Self.headerBlock(request.headers)
        transfer.headerBlock = block
        set(pc_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, block.assumingMemoryBound(to: curl_slist.self)))

        guard ok, curl_multi_add_handle(self.multi, easy) == CURLM_OK else {
            self.finish(transfer, error: UpstreamError(kind: .badGateway, curlCode: 0, message: "could not configure the transfer"))
            return
        }
        self.running += 1
    }

    /// Puts back what ``begin(_:)`` set for one transfer, leaving ``configure(_:)``'s options.
    /// - Returns: `false` if the handle could not be put back and should be discarded.
    private func recycle(_ easy: UnsafeMutableRawPointer, after request: UpstreamRequest) -> Bool {
        if Self.needsFullReset(request) {
            curl_easy_reset(easy)
            return self.configure(easy)
        }
        var ok = true
        func set(_ result: CURLcode) { if result != CURLE_OK { ok = false } }
        // HTTPGET also clears NOBODY and UPLOAD: the method is GET again.
        set(pc_curl_setopt_long(easy, CURLOPT_HTTPGET, 1))
        set(pc_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, nil))
        set(pc_curl_setopt_offset(easy, CURLOPT_INFILESIZE_LARGE, -1))
        set(pc_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, nil))
        set(pc_curl_setopt_pointer(easy, CURLOPT_PRIVATE, nil))
        set(pc_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, nil))
        set(pc_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, nil))
        set(pc_curl_setopt_pointer(easy, CURLOPT_READDATA, nil))
        return ok
    }

    /// Lines libcurl gets after the request's own: an empty value removes a header curl would add
    /// by itself (`Accept: */*`, and `Expect: 100-continue` for uploads).
    private static let suppressExpect = Array("Expect:\0".utf8)
    private static let suppressAcceptAndExpect = Array("Accept:\0Expect:\0".utf8)

    /// Builds the request's `curl_slist` in one allocation: the list nodes, then the strings they
    /// point into. libcurl only reads the list; ``finish(_:error:)`` frees it once the handle is
    /// out of the multi handle.
    private static func headerBlock(_ headers: UpstreamHeaderLines) -> UnsafeMutableRawPointer {
        let tail = headers.hasAccept ? Self.suppressExpect : Self.suppressAcceptAndExpect
        let nodeCount = headers.count + (headers.hasAccept ? 1 : 2)
        let stride = MemoryLayout<curl_slist>.stride
        let nodesSize = nodeCount * stride
        let block = UnsafeMutableRawPointer.allocate(
            byteCount: nodesSize + headers.bytes.count + tail.count, alignment: MemoryLayout<curl_slist>.alignment)
        headers.bytes.withUnsafeBytes { (block + nodesSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        tail.withUnsafeBytes { (block + nodesSize + headers.bytes.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let text = (block + nodesSize).bindMemory(to: CChar.self, capacity: headers.bytes.count + tail.count)
        let nodes = block.bindMemory(to: curl_slist.self, capacity: nodeCount)
        var offset = 0
        for index in 0..<nodeCount {
            let next = index + 1 < nodeCount ? nodes + index + 1 : nil
            (nodes + index).initialize(to: curl_slist(data: text + offset, next: next))
            offset += strlen(text + offset) + 1
        }
        return block
    }

    /// Removes the transfer from curl, recycles its handle, and tells the handler. Runs once.
    private func finish(_ transfer: UpstreamTransfer, error: UpstreamError?) {
        guard !transfer.finished, let easy = transfer.easy else { return }
        transfer.finished = true
        if curl_multi_remove_handle(self.multi, easy) == CURLM_OK, self.running > 0 { self.running -= 1 }
        transfer.headerBlock?.deallocate()
        transfer.headerBlock = nil
        transfer.easy = nil
        if self.idleHandles.count < 512, self.recycle(easy, after: transfer.request) {
            self.idleHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
        transfer.handler.upstreamFinished(error)
        transfer.retainedByCurl?.release()  // curl's +1 from `begin`
        transfer.retainedByCurl = nil
    }
}

// C entry points for curl's callbacks. They capture nothing (they are C function pointers) and
// find their transfer through the opaque pointer set in `begin`; they run on the curl thread.

private let curlSocketThunk: curl_socket_callback = { _, fd, what, userp, _ in
    Unmanaged<CurlMulti>.fromOpaque(userp!).takeUnretainedValue().watch(fd, what)
    return 0
}

private let curlOpenSocketThunk: curl_opensocket_callback = { clientp, _, address in
    guard let address else { return -1 }
    return Unmanaged<CurlMulti>.fromOpaque(clientp!).takeUnretainedValue().openSocket(
        family: address.pointee.family, type: address.pointee.socktype, protocol: address.pointee.protocol)
}

private let curlCloseSocketThunk: curl_closesocket_callback = { clientp, fd in
    Unmanaged<CurlMulti>.fromOpaque(clientp!).takeUnretainedValue().closeSocket(fd)
}

private let curlTimerThunk: curl_multi_timer_callback = { _, milliseconds, userp in
    Unmanaged<CurlMulti>.fromOpaque(userp!).takeUnretainedValue().setTimer(milliseconds: milliseconds)
    return 0
}

private let curlHeaderThunk: curl_write_callback = { data, size, count, userdata in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    // Anything but the line's length makes curl stop the transfer (CURLE_WRITE_ERROR).
    return transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
}

private let curlWriteThunk: curl_write_callback = { data, size, count, userdata in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
}

private let curlReadThunk: curl_read_callback = { buffer, size, count, userdata in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.provideBody(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

/// Versions of libcurl as linked, for `portcullis version`.
package enum CurlVersion {
    package static var text: String {
        guard let text = curl_version() else { return "unknown" }
        return String(cString: text)
    }
}
