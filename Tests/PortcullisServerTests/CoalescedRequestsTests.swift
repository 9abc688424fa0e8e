@testable import PortcullisServer
import Testing

@Suite("Coalesced requests (SIGHUP reloads, SIGUSR1 reopenings)")
struct CoalescedRequestsTests {
    @Test("requests made while a run is under way collapse into one more run")
    func requestsDuringARunCollapse() async {
        let requests = CoalescedRequests()
        requests.request()
        var runs = 0
        await requests.run {
            runs += 1
            if runs == 1 {
                for _ in 0..<5 { requests.request() }
            } else {
                requests.finish()
            }
        }
        #expect(runs == 2)
    }

    @Test("requests made before the first run collapse into one run")
    func requestsBeforeTheFirstRunCollapse() async {
        let requests = CoalescedRequests()
        for _ in 0..<3 { requests.request() }
        requests.finish()
        var runs = 0
        await requests.run { runs += 1 }
        #expect(runs == 1)
    }

    @Test("a trigger after a run has ended starts another, and the runs end with the triggers")
    func eachTriggerAfterARunStartsOne() async {
        let (triggers, trigger) = AsyncStream.makeStream(of: Int.self)
        let (done, finished) = AsyncStream.makeStream(of: Void.self)
        let loop = Task {
            await CoalescedRequests.run(for: triggers) { finished.yield() }
        }
        var ends = done.makeAsyncIterator()
        trigger.yield(1)
        #expect(await ends.next() != nil)
        trigger.yield(2)
        #expect(await ends.next() != nil)
        trigger.finish()
        await loop.value
        finished.finish()
        #expect(await ends.next() == nil, "no run beyond the two asked for")
    }

    @Test("cancelling the task ends the runs")
    func cancellationEndsTheRuns() async {
        let (triggers, _) = AsyncStream.makeStream(of: Int.self)
        let loop = Task {
            await CoalescedRequests.run(for: triggers) {}
        }
        loop.cancel()
        await loop.value
    }
}
