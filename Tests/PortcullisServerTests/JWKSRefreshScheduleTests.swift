@testable import PortcullisServer
import Testing

@Suite("Key-set refresh schedule")
struct JWKSRefreshScheduleTests {
    @Test(
        "the wait before the next scheduled fetch",
        arguments: [
            (refresh: Int64(600_000), succeeded: true, loaded: true, wait: Int64(600_000)),
            (refresh: 600_000, succeeded: false, loaded: true, wait: 600_000),
            (refresh: 600_000, succeeded: false, loaded: false, wait: 30_000),
            (refresh: 5_000, succeeded: false, loaded: false, wait: 5_000),
            (refresh: 600_000, succeeded: true, loaded: false, wait: 600_000),
        ])
    func interval(refresh: Int64, succeeded: Bool, loaded: Bool, wait: Int64) {
        #expect(JWKSRefreshService.interval(refresh: refresh, succeeded: succeeded, loaded: loaded) == wait)
    }
}
