@testable import PortcullisServer
import Testing

@Suite("Login-throttle table")
struct FailureTableTests {
    @Test("an address is held back once its failures reach the limit within the window")
    func ownFailures() {
        var table = FailureTable(maxFailures: 3, window: 60)
        for second in [0.0, 10, 20] {
            #expect(table.retryAfter(address: "a", now: second) == nil)
            table.record(address: "a", now: second)
        }
        #expect(table.retryAfter(address: "a", now: 30) == 30)  // the oldest failure leaves the window at 60
        #expect(table.retryAfter(address: "b", now: 30) == nil)  // other addresses are not held back
        #expect(table.retryAfter(address: "a", now: 60) == nil)
    }

    @Test("failures other replicas reported add to this replica's own")
    func othersCount() {
        var table = FailureTable(maxFailures: 3, window: 60)
        table.record(address: "a", now: 20)
        table.replaceOthers(["a": (count: 2, oldest: 5)])
        #expect(table.retryAfter(address: "a", now: 30) == 35)  // the other replicas' oldest counts
        table.replaceOthers(["a": (count: 1, oldest: 25)])  // a newer reading: some expired there
        #expect(table.retryAfter(address: "a", now: 30) == nil)
    }

    @Test("a reading from a store that stopped answering expires with its own window")
    func staleReadingsExpire() {
        var table = FailureTable(maxFailures: 2, window: 60)
        table.replaceOthers(["a": (count: 5, oldest: 0)])
        #expect(table.retryAfter(address: "a", now: 59) == 1)
        #expect(table.retryAfter(address: "a", now: 61) == nil)
    }
}
