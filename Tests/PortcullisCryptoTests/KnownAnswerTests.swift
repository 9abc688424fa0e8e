import PortcullisCrypto
import Testing

/// The JWS examples of RFC 7515 Appendix A and RFC 8037 §A.4, verified with the keys given
/// there; then every single-byte change to the token must fail.
@Suite("RFC 7515 and RFC 8037 known answers")
struct KnownAnswerTests {
    static let payload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

    struct Vector: CustomStringConvertible, Sendable {
        let name: String
        let token: String
        let algorithm: JWSAlgorithm
        let key: @Sendable () throws -> JWSKey
        var description: String { self.name }
    }

    static func bytes(_ text: String) -> [UInt8] { Base64URL.decode(text.utf8)! }

    static let vectors: [Vector] = [
        Vector(
            name: "A.1 HS256",
            token: "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\(payload).dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            algorithm: .HS256,
            key: { .secret(HMACKey(bytes("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"))) }),
        Vector(
            name: "A.2 RS256",
            token: "eyJhbGciOiJSUzI1NiJ9.\(payload)."
                + "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
            algorithm: .RS256,
            key: {
                .publicKey(
                    try EVPKey.rsa(
                        modulus: bytes(
                            "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
                        ), exponent: bytes("AQAB")))
            }),
        Vector(
            name: "A.3 ES256",
            token: "eyJhbGciOiJFUzI1NiJ9.\(payload).DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
            algorithm: .ES256,
            key: {
                .publicKey(
                    try EVPKey.ec(
                        curve: "P-256", x: bytes("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"),
                        y: bytes("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")))
            }),
        Vector(
            name: "A.4 ES512",
            token: "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
                + "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
            algorithm: .ES512,
            key: {
                .publicKey(
                    try EVPKey.ec(
                        curve: "P-521",
                        x: bytes("AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk"),
                        y: bytes("ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2")))
            }),
        Vector(
            name: "RFC 8037 A.4 Ed25519",
            token: "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
            algorithm: .EdDSA,
            key: { .publicKey(try EVPKey.ed25519(publicKey: bytes("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"))) }),
    ]

    @Test("the published example verifies", arguments: Self.vectors)
    func verifies(_ vector: Vector) throws {
        let jws = try CompactJWS(Array(vector.token.utf8), jsonPayload: false)
        #expect(jws.verify(algorithm: vector.algorithm, key: try vector.key()))
    }

    @Test("any single changed byte makes it fail", arguments: Self.vectors)
    func tamperingFails(_ vector: Vector) throws {
        let key = try vector.key()
        let original = Array(vector.token.utf8)
        var accepted: [Int] = []
        for index in original.indices where original[index] != UInt8(ascii: ".") {
            var changed = original
            // Swap to another base64url character so the token still parses where it can.
            changed[index] = original[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            guard let jws = try? CompactJWS(changed, jsonPayload: false) else { continue }
            if jws.verify(algorithm: vector.algorithm, key: key) { accepted.append(index) }
        }
        #expect(accepted.isEmpty, "accepted after changing bytes at \(accepted)")
    }

    @Test("one key verifies from many threads at once, and a failure does not stick", arguments: Self.vectors)
    func concurrentUse(_ vector: Vector) async throws {
        let key = try vector.key()
        let good = try CompactJWS(Array(vector.token.utf8), jsonPayload: false)
        var changed = Array(vector.token.utf8)
        changed[changed.count - 2] = changed[changed.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let bad = try CompactJWS(changed, jsonPayload: false)
        let wrong = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var wrong = 0
                    for _ in 0..<50 {
                        if !good.verify(algorithm: vector.algorithm, key: key) { wrong += 1 }
                        if bad.verify(algorithm: vector.algorithm, key: key) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(wrong == 0)
    }

    @Test("the wrong algorithm family never verifies")
    func wrongFamily() throws {
        let rsa = try Self.vectors[1].key()
        let hs = try CompactJWS(Array(Self.vectors[0].token.utf8))
        #expect(!hs.verify(algorithm: .HS256, key: rsa))
        #expect(!JWSAlgorithm.HS256.fits(rsa))
        #expect(!JWSAlgorithm.ES384.fits(try Self.vectors[2].key()))
    }
}

@Suite("JOSE building blocks")
struct JOSETests {
    @Test("base64url is strict")
    func base64url() {
        #expect(Base64URL.decode("AQAB".utf8) == [1, 0, 1])
        #expect(Base64URL.decode("AQAB=".utf8) == nil)
        #expect(Base64URL.decode("AQ+B".utf8) == nil)
        #expect(Base64URL.decode("AR".utf8) == nil)  // non-zero leftover bits
        #expect(Base64URL.decode("A".utf8) == nil)
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }

    @Test("JSON is parsed strictly")
    func strictJSON() {
        #expect(JSONValue.parse(Array(#"{"a":1,"b":[true,null,"x\u00e9"]}"#.utf8)) != nil)
        #expect(JSONValue.parse(Array(#"{"a":1,"a":2}"#.utf8)) == nil)
        #expect(JSONValue.parse(Array(#"{"a":1} x"#.utf8)) == nil)
        #expect(JSONValue.parse(Array(#"{"a":01}"#.utf8)) == nil)
        #expect(JSONValue.parse(Array(#"{"a":"\ud800"}"#.utf8)) == nil)
        #expect(JSONValue.parse(Array("{\"a\":\"\u{01}\"}".utf8)) == nil)
        #expect(JSONValue.parse(Array(#"{'a':1}"#.utf8)) == nil)
        #expect(JSONValue.parse(Array(String(repeating: "[", count: 100).utf8)) == nil)
        // Raw (unescaped) UTF-8 is kept when valid and refused when not.
        #expect(JSONValue.parse(Array(#"{"a":"é\u0041"}"#.utf8))?["a"]?.string == "éA")
        #expect(JSONValue.parse(Array(#"{"a":"naïve"}"#.utf8))?["a"]?.string == "naïve")
        #expect(JSONValue.parse([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]) == nil)
        #expect(JSONValue.parse([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D]) == nil)
    }

    @Test("RSA keys that are no RSA keys are refused (e = 1 would let anyone sign)")
    func rsaParameters() throws {
        // A real 2048-bit modulus (odd), from a key made for this test.
        let key = try EVPKey.rsa(modulus: Self.modulus, exponent: [0x01, 0x00, 0x01])
        #expect(key.kind == .rsa(bits: 2048))
        for exponent: [UInt8] in [[0x01], [0x02], [0x00, 0x01], [0x01, 0x00, 0x00]] {
            #expect(throws: OpenSSLError.self, "\(exponent)") { try EVPKey.rsa(modulus: Self.modulus, exponent: exponent) }
        }
        var even = Self.modulus
        even[even.count - 1] &= 0xFE
        #expect(throws: OpenSSLError.self) { try EVPKey.rsa(modulus: even, exponent: [0x01, 0x00, 0x01]) }
        #expect(throws: OpenSSLError.self) { try EVPKey.rsa(modulus: [0x00], exponent: [0x01, 0x00, 0x01]) }
        let set = #"{"keys":[{"kty":"RSA","kid":"e1","n":"\#(Base64URL.encode(Self.modulus))","e":"AQ"},{"kty":"AKP","kid":"x"}]}"#
        #expect(throws: JWK.ParseError.self) { try JWK.parseSet(Array(set.utf8), allowSecrets: false) }
        let published = try JWK.parsePublishedSet(Array(set.utf8))
        #expect(published.keys.isEmpty && published.skipped.count == 2)
        let leaking = #"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#
        #expect(throws: JWK.ParseError.self) { try JWK.parsePublishedSet(Array(leaking.utf8)) }
    }

    @Test("a key whose key_ops lacks verify is left out of the set (RFC 7517 §4.3)")
    func keyOperations() throws {
        let n = Base64URL.encode(Self.modulus)
        func set(_ keyOps: String) -> [UInt8] {
            Array(#"{"keys":[{"kty":"RSA","kid":"r","n":"\#(n)","e":"AQAB"\#(keyOps)}]}"#.utf8)
        }
        for keyOps in [#","key_ops":["encrypt"]"#, #","key_ops":["sign"]"#, #","key_ops":[]"#, #","key_ops":"verify""#] {
            #expect(try JWK.parseSet(set(keyOps), allowSecrets: false).isEmpty, "\(keyOps)")
            let published = try JWK.parsePublishedSet(set(keyOps))
            #expect(published.keys.isEmpty, "\(keyOps)")
        }
        for keyOps in ["", #","key_ops":["verify"]"#, #","key_ops":["sign","verify"]"#] {
            #expect(try JWK.parseSet(set(keyOps), allowSecrets: false).map(\.kid) == ["r"], "\(keyOps)")
            #expect(try JWK.parsePublishedSet(set(keyOps)).keys.map(\.kid) == ["r"], "\(keyOps)")
        }
    }

    static let modulus: [UInt8] = {
        // RFC 7515 Appendix A.2's RSA modulus.
        let n = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
        return Base64URL.decode(n.utf8)!
    }()

    @Test("numbers read by the integer shortcut equal the general reading")
    func jsonNumbers() {
        let texts = [
            "0", "-0", "7", "-7", "1700000000", "-1700000000", "999999999999999", "-999999999999999", "1000000000000000",
            "12345678901234567890", "1.5", "-0.25", "1e3", "1E-3", "2.5e+2", "4102444800",
        ]
        for text in texts {
            let parsed = JSONValue.parse(Array("{\"n\":\(text)}".utf8))?["n"]?.number
            #expect(parsed == Double(text), "\(text)")
        }
        for text in ["-", "01", "-01", "1.", ".5", "1e", "+1", "--1", "1-"] {
            #expect(JSONValue.parse(Array("{\"n\":\(text)}".utf8)) == nil, "\(text)")
        }
    }

    @Test("signing round-trips for every algorithm family")
    func signAndVerify() throws {
        let secret = JWSKey.secret(HMACKey(Array("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".utf8)))
        for algorithm in [JWSAlgorithm.HS256, .HS384, .HS512] {
            let token = try CompactJWS.sign(header: #"{"alg":"\#(algorithm.rawValue)"}"#, payload: #"{"sub":"x"}"#, algorithm: algorithm, key: secret)
            #expect(try CompactJWS(Array(token.utf8)).verify(algorithm: algorithm, key: secret))
            #expect(try !CompactJWS(Array(token.utf8)).verify(algorithm: algorithm, key: .secret(HMACKey(Array("other".utf8)))))
        }
    }

    @Test("ECDSA signatures convert between R||S and DER")
    func ecdsaConversion() throws {
        let raw = [UInt8](repeating: 0, count: 31) + [1] + [UInt8](repeating: 0, count: 31) + [2]
        let der = try #require(raw.withUnsafeBytes { ECDSASignature.der(fromRaw: $0, width: 32) })
        #expect(der == [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02])
        #expect(ECDSASignature.raw(fromDER: der, width: 32) == raw)
        #expect(raw.withUnsafeBytes { ECDSASignature.der(fromRaw: $0, width: 48) } == nil)
    }
}
