import PortcullisCrypto
import Testing

@Suite("Argon2 through libargon2")
struct Argon2Tests {
    @Test("the hashes of FastAPI's security tutorial verify")
    func tutorialHashes() {
        let johndoe = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc"
        let alice = "$argon2id$v=19$m=65536,t=3,p=4$g2/AV1zwopqUntPKJavBFw$BwpRGDCyUHLvHICnwijyX8ROGoiUPwNKZ7915MeYfCE"
        #expect(Argon2.verify(Array("secret".utf8), encoded: johndoe))
        #expect(Argon2.verify(Array("secretalice".utf8), encoded: alice))
        #expect(!Argon2.verify(Array("Secret".utf8), encoded: johndoe))
        #expect(!Argon2.verify(Array("secretalice".utf8), encoded: johndoe))
    }

    @Test("a new hash has the contract's parameters and verifies only its password")
    func roundTrip() throws {
        let encoded = try #require(Argon2.hash(Array("pässwörd:with:colons".utf8)))
        #expect(encoded.hasPrefix("$argon2id$v=19$m=65536,t=3,p=4$"))
        #expect(Argon2.verify(Array("pässwörd:with:colons".utf8), encoded: encoded))
        #expect(!Argon2.verify(Array("pässwörd:with:colon".utf8), encoded: encoded))
        #expect(Argon2.hash(Array("x".utf8)) != Argon2.hash(Array("x".utf8)))  // fresh salt each time
    }

    @Test("the dummy hash is well formed, so checking an unknown user costs a full verification")
    func dummyHash() {
        #expect(Argon2.verifyResult(Array("anything".utf8), encoded: Argon2.dummyHash) == .mismatch)
        #expect(Argon2.verifyResult(Array("x".utf8), encoded: "$argon2id$broken") == .malformed)
        #expect(Argon2.verifyResult(Array("x".utf8), encoded: "$2b$12$bcrypt") == .malformed)
    }
}
