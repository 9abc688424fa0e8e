import PortcullisCore
import Testing

@Suite("Reading the Authorization header (RFC 9110 §11, RFC 6750 §2.1)")
struct CredentialsTests {
    static let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"

    @Test("the scheme in any case, the token after one or more spaces, white space around ignored")
    func bearer() {
        for value in [
            "Bearer \(Self.token)", "bearer \(Self.token)", "BEARER   \(Self.token)", " \tBearer \(Self.token) \t",
        ] {
            #expect(PresentedCredentials.read([value]) == .bearer(Substring(Self.token)), "\(value)")
        }
        #expect(PresentedCredentials.read(["Bearer abc=="]) == .bearer("abc=="))
        #expect(PresentedCredentials.read(["Bearer a-b.c_d~e+f/g"]) == .bearer("a-b.c_d~e+f/g"))
    }

    @Test("what is not a b64token, a missing token, two headers and a tab separator are malformed")
    func malformed() {
        for value in ["Bearer abc=d", "Bearer a b", "Bearer a\"b", "Bearer tökén", "Bearer a\u{7F}", "Bearer a,b"] {
            #expect(PresentedCredentials.read([value]) == .malformed("The Bearer token has invalid characters"), "\(value)")
        }
        for value in ["Bearer", "Bearer   ", "bearer \t"] {
            #expect(PresentedCredentials.read([value]) == .malformed("The Bearer scheme needs a token"), "\(value)")
        }
        #expect(
            PresentedCredentials.read(["Bearer\t\(Self.token)"])
                == .malformed("The Bearer scheme and its token must be separated by a space"))
        #expect(PresentedCredentials.read(["Bearer a", "Bearer b"]) == .malformed("More than one Authorization header"))
    }

    @Test("the b64token check can be left to the caller, and then only it is left out")
    func deferredTokenCheck() {
        #expect(PresentedCredentials.read(["Bearer a,b"], checkingToken: false) == .bearer("a,b"))
        #expect(!PresentedCredentials.isToken68("a,b") && !PresentedCredentials.isToken68("abc=d"))
        #expect(PresentedCredentials.isToken68(Substring(Self.token)) && PresentedCredentials.isToken68("abc=="))
        #expect(PresentedCredentials.read(["Bearer"], checkingToken: false) == .malformed("The Bearer scheme needs a token"))
        #expect(PresentedCredentials.read(["Bearer a", "Bearer b"], checkingToken: false) == .malformed("More than one Authorization header"))
    }

    @Test("Basic, other schemes and nothing at all")
    func otherSchemes() {
        #expect(PresentedCredentials.read([]) == .none)
        #expect(PresentedCredentials.read(["Basic dXNlcjpwYXNz"]) == .basic("dXNlcjpwYXNz"))
        #expect(PresentedCredentials.read(["basic  dXNlcjpwYXNz "]) == .basic("dXNlcjpwYXNz"))
        #expect(PresentedCredentials.read(["Digest username=\"x\""]) == .otherScheme)
        #expect(PresentedCredentials.read(["Bearerx abc"]) == .otherScheme)
        #expect(PresentedCredentials.read(["   "]) == .otherScheme)
        #expect(PresentedCredentials.read(["Béarer abc"]) == .otherScheme)
    }

    @Test("header names compare ignoring ASCII case, and `_` as `-` only when asked")
    func headerNames() {
        #expect("X-Forwarded-For".equalsIgnoringASCIICase("x-forwarded-for"))
        #expect(!"X-Forwarded-Fox".equalsIgnoringASCIICase("x-forwarded-for"))
        #expect(!"X-Forwarded-Fo".equalsIgnoringASCIICase("x-forwarded-for"))
        #expect(!"X_Forwarded_For".equalsIgnoringASCIICase("x-forwarded-for"))
        #expect("X_Forwarded_For".equalsIgnoringASCIICase("x-forwarded-for", underscoreAsDash: true))
        #expect(!"X-ForwardedéFor".equalsIgnoringASCIICase("x-forwarded-for"))
        // Bridged or sliced strings without contiguous UTF-8 take the slow path, with the same answer.
        let sliced = String("..Authorization..".dropFirst(2).dropLast(2))
        #expect(sliced.equalsIgnoringASCIICase("authorization"))
        #expect("".equalsIgnoringASCIICase(""))
    }
}
