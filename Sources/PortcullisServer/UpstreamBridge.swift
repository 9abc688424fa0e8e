import NIOCore
import PortcullisUpstream
import Synchronization

/// Carries one exchange's upstream events from the curl thread to the connection's event loop.
///
/// Events are queued and handed over in batches: the first event of a batch schedules one task
/// on the loop, and every event queued before that task runs rides along. A small response
/// (head, body and end read in one pass of the curl loop) then costs one hop instead of three.
final class UpstreamBridge: UpstreamResponseHandler, Sendable {
    private enum Event {
        case head(UpstreamResponseHead)
        case body(ByteBuffer)
        case wantsBody
        case finished(UpstreamError?)
    }

    private struct Queue {
        var events: [Event] = []
        var scheduled = false
    }

    private let handler: NIOLoopBound<GatewayHandler>
    private let eventLoop: any EventLoop
    private let generation: Int
    private let queue = Mutex(Queue())

    init(handler: GatewayHandler, eventLoop: any EventLoop, generation: Int) {
        self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
        self.eventLoop = eventLoop
        self.generation = generation
    }

    private func enqueue(_ event: Event) {
        let schedule = self.queue.withLock { queue -> Bool in
            queue.events.append(event)
            defer { queue.scheduled = true }
            return !queue.scheduled
        }
        guard schedule else { return }
        self.eventLoop.execute { [self] in
            let events = self.queue.withLock { queue -> [Event] in
                queue.scheduled = false
                // Handing the array over whole (not emptying it in place) spares a copy.
                defer { queue.events = [] }
                return queue.events
            }
            let handler = self.handler.value
            for event in events {
                switch event {
                case .head(let head): handler.upstreamHead(head, generation: self.generation)
                case .body(let bytes): handler.upstreamBody(bytes, generation: self.generation)
                case .wantsBody: handler.upstreamWantsBody(generation: self.generation)
                case .finished(let error): handler.upstreamFinished(error, generation: self.generation)
                }
            }
            handler.upstreamBatchHandled()
        }
    }

    func upstreamResponseHead(_ head: UpstreamResponseHead) { self.enqueue(.head(head)) }
    func upstreamResponseBody(_ bytes: ByteBuffer) { self.enqueue(.body(bytes)) }
    func upstreamWantsRequestBody() { self.enqueue(.wantsBody) }
    func upstreamFinished(_ error: UpstreamError?) { self.enqueue(.finished(error)) }
}
