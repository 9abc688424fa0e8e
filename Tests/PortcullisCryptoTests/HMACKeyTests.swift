import Foundation
import PortcullisCrypto
import Testing

@Suite("HMAC keys with keyed OpenSSL contexts")
struct HMACKeyTests {
    static let digests: [DigestAlgorithm] = [.sha256, .sha384, .sha512]

    /// RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?".
    @Test("RFC 4231 case 2 for each digest")
    func knownAnswer() {
        let key = HMACKey(Array("Jefe".utf8))
        let message = Array("what do ya want for nothing?".utf8)
        let expected = [
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ]
        for (digest, hex) in zip(Self.digests, expected) {
            let tag = message.withUnsafeBytes { key.mac(digest, $0) }
            #expect(tag.map { String(format: "%02x", $0) }.joined() == hex)
        }
    }

    @Test("agrees with one-shot HMAC, including an empty key, and rejects a changed tag")
    func agreesWithOneShot() {
        for secret in [[], Array("k".utf8), Array(repeating: UInt8(7), count: 200)] {
            let key = HMACKey(secret)
            for digest in Self.digests {
                for length in [0, 1, 63, 64, 65, 1000] {
                    let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                    let oneShot = secret.withUnsafeBytes { k in message.withUnsafeBytes { digest.hmac(key: k, message: $0) } }
                    var tag = message.withUnsafeBytes { key.mac(digest, $0) }
                    #expect(tag == oneShot)
                    #expect(message.withUnsafeBytes { m in tag.withUnsafeBytes { key.verify(digest, m, tag: $0) } })
                    tag[tag.count - 1] ^= 1
                    #expect(!message.withUnsafeBytes { m in tag.withUnsafeBytes { key.verify(digest, m, tag: $0) } })
                    #expect(!message.withUnsafeBytes { m in tag.dropLast().withUnsafeBytes { key.verify(digest, m, tag: $0) } })
                }
            }
        }
    }

    @Test("one key verifies from many threads at once")
    func concurrentUse() async {
        let key = HMACKey(Array("a shared secret of thirty-two by".utf8))
        let message = Array("header.payload".utf8)
        let expected = message.withUnsafeBytes { key.mac(.sha256, $0) }
        let failures = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var failures = 0
                    for _ in 0..<2_000 {
                        let ok = message.withUnsafeBytes { m in expected.withUnsafeBytes { key.verify(.sha256, m, tag: $0) } }
                        if !ok { failures += 1 }
                    }
                    return failures
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}
