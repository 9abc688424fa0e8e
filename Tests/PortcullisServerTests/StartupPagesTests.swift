import PortcullisServer
import Testing

@Suite struct StartupPagesTests {
    @Test func releasingUnmapsReadOnlyFilePagesAndKeepsEveryWrittenByte() {
        var heap = [UInt64](repeating: 0, count: 1 << 16)
        for index in heap.indices { heap[index] = UInt64(index) &* 0x9E37_79B9_7F4A_7C15 }
        let before = StartupPages.readOnlyFileMappings()
        #expect(before.contains { $0.anonymousKiB > 0 }, "relocated read-only data has private pages and is left alone")
        let residentBefore = before.filter { $0.anonymousKiB == 0 }.reduce(0) { $0 + $1.residentKiB }

        let released = StartupPages.release()

        #expect(released.mappings > 0)
        let after = StartupPages.readOnlyFileMappings()
        let residentAfter = after.filter { $0.anonymousKiB == 0 }.reduce(0) { $0 + $1.residentKiB }
        // What the test ran since the release is mapped again; the rest stays out.
        #expect(residentAfter * 2 < residentBefore, "resident KiB before \(residentBefore), after \(residentAfter)")
        // Mappings with private pages keep them.
        let privateBefore = before.reduce(0) { $0 + ($1.anonymousKiB == Int.max ? 0 : $1.anonymousKiB) }
        let privateAfter = after.reduce(0) { $0 + ($1.anonymousKiB == Int.max ? 0 : $1.anonymousKiB) }
        #expect(privateAfter == privateBefore)
        #expect(heap.indices.allSatisfy { heap[$0] == UInt64($0) &* 0x9E37_79B9_7F4A_7C15 })
    }
}
