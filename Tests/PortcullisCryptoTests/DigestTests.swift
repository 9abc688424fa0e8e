import PortcullisCrypto
import Testing

@Suite("SHA-2 digests through fetched OpenSSL implementations")
struct DigestTests {
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// FIPS 180-2 appendix B.1 and the empty message.
    @Test("known answers, into a caller's buffer and as an array")
    func knownAnswers() {
        let cases: [(DigestAlgorithm, String, String)] = [
            (.sha256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (.sha256, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (.sha384, "abc", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
            (
                .sha512, "abc",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
            ),
        ]
        for (digest, message, expected) in cases {
            let bytes = Array(message.utf8)
            #expect(Self.hex(bytes.withUnsafeBytes { digest.hash($0) }) == expected)
            var out = [UInt8](repeating: 0xAA, count: 64)
            let count = out.withUnsafeMutableBytes { buffer in bytes.withUnsafeBytes { digest.hash($0, into: buffer) } }
            #expect(count == digest.byteCount)
            #expect(Self.hex(out[..<count]) == expected)
            #expect(out[count...].allSatisfy { $0 == 0xAA })  // nothing written past the digest
        }
    }
}
