import Foundation
import PortcullisFuzzing
import Testing

/// Every committed seed and every past finding of `make fuzz` (fuzz/corpus, fuzz/regressions)
/// goes through its fuzz target again, properties included, on every `swift test`.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fuzz")

    @Test("each target's corpus and findings replay without a crash or a failed property", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        var replayed = 0
        for folder in ["corpus", "regressions"] {
            let directory = Self.root.appendingPathComponent(folder).appendingPathComponent(target.rawValue)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { continue }
            for name in names.sorted() {
                let data = try Data(contentsOf: directory.appendingPathComponent(name))
                target.run(Array(data))
                replayed += 1
            }
        }
        #expect(replayed > 0, "no seed for \(target.rawValue) under fuzz/corpus")
    }
}
