import PortcullisCore
import Testing

@Suite("Request target normalization (contract §3)")
struct RequestTargetTests {
    struct Case: CustomStringConvertible, Sendable {
        let raw: String
        let path: String
        let query: String?
        var description: String { self.raw }
    }

    static let normalized: [Case] = [
        Case(raw: "/", path: "/", query: nil),
        Case(raw: "/users/me", path: "/users/me", query: nil),
        Case(raw: "/users/me/", path: "/users/me/", query: nil),
        Case(raw: "/a;v=1/b;x", path: "/a;v=1/b;x", query: nil),
        Case(raw: "/a/...;x", path: "/a/...;x", query: nil),
        Case(raw: "/a/./b", path: "/a/b", query: nil),
        Case(raw: "/a/b/..", path: "/a/", query: nil),
        Case(raw: "/a/b/.", path: "/a/b/", query: nil),
        Case(raw: "/public/../admin", path: "/admin", query: nil),
        Case(raw: "/public/%2e%2e/admin", path: "/admin", query: nil),
        Case(raw: "/public/%2E%2E/admin", path: "/admin", query: nil),
        Case(raw: "/%7Euser", path: "/~user", query: nil),
        Case(raw: "/%41%62c", path: "/Abc", query: nil),
        Case(raw: "/a%3ab", path: "/a%3Ab", query: nil),
        Case(raw: "/a%20b", path: "/a%20b", query: nil),
        Case(raw: "//admin", path: "/admin", query: nil),
        Case(raw: "/a//b///c", path: "/a/b/c", query: nil),
        Case(raw: "/a/b//", path: "/a/b/", query: nil),
        Case(raw: "/x?b=%2F&a=1", path: "/x", query: "b=%2F&a=1"),
        Case(raw: "/x?", path: "/x", query: ""),
        Case(raw: "http://api.example/users/me?x=1", path: "/users/me", query: "x=1"),
        Case(raw: "HTTP://api.example", path: "/", query: nil),
    ]

    @Test("targets are normalized", arguments: Self.normalized)
    func normalizes(_ item: Case) throws {
        let target = try RequestTarget.normalize(item.raw, mergeSlashes: true).get()
        #expect(target.path == item.path)
        #expect(target.query == item.query)
    }

    @Test("absolute-form targets carry their authority")
    func absoluteForm() throws {
        let target = try RequestTarget.normalize("http://api.example:8080/x", mergeSlashes: true).get()
        #expect(target.authority == "api.example:8080")
    }

    @Test("without merge_slashes, empty segments stay")
    func keepsSlashes() throws {
        #expect(try RequestTarget.normalize("//admin", mergeSlashes: false).get().path == "//admin")
        #expect(try RequestTarget.normalize("/a//b", mergeSlashes: false).get().path == "/a//b")
    }

    static let refused: [(String, RequestTarget.Refusal)] = [
        ("http://a,b/public/a", .badAuthority),
        ("/public/..;/admin/x", .dotSegmentParameter),
        ("/public/.;x/admin", .dotSegmentParameter),
        ("/public/%2e%2E;jsessionid=1/admin", .dotSegmentParameter),
        ("http://:80/public/a", .badAuthority),
        ("http://a:80:80/x", .badAuthority),
        ("http://host:abc/x", .badAuthority),
        ("http://[::1/x", .badAuthority),
        ("http://[zz]/x", .badAuthority),
        ("http://a%0d%0ab/x", .badAuthority),
        ("/public/%2F..", .encodedSlash),
        ("/a%2fb", .encodedSlash),
        ("/a%5cb", .encodedBackslash),
        ("/a\\b", .backslash),
        ("/a%00b", .nulByte),
        ("/a%01b", .controlCharacter),
        ("/a%7Fb", .controlCharacter),
        ("/a\u{7F}b", .controlCharacter),
        ("/a\tb", .controlCharacter),
        ("/..", .climbsAboveRoot),
        ("/a/../..", .climbsAboveRoot),
        ("/%2e%2e/etc", .climbsAboveRoot),
        ("/a%zz", .badPercentEncoding),
        ("/a%2", .badPercentEncoding),
        ("*", .notOriginOrAbsoluteForm),
        ("api.example:443", .notOriginOrAbsoluteForm),
        ("ftp://x/y", .notOriginOrAbsoluteForm),
        ("/caf\u{E9}", .nonASCII),
        ("/a#frag", .fragment),
    ]

    @Test("dangerous targets are refused", arguments: Self.refused)
    func refuses(_ raw: String, _ expected: RequestTarget.Refusal) {
        guard case .failure(let refusal) = RequestTarget.normalize(raw, mergeSlashes: true) else {
            Issue.record("\(raw) was accepted")
            return
        }
        #expect(refusal == expected)
    }

    /// Every path of up to five pieces over an alphabet of the bytes that matter, in both slash
    /// modes: the shortcut for paths already in normal form must agree with the full steps.
    @Test("the normal-form shortcut agrees with the full steps")
    func shortcutAgrees() {
        let pieces = ["/", ".", "..", "a", "%2e", "%41", "%2F", "\\", " ", "#", "~", "é", ";"]
        var paths = [""]
        var checked = 0
        for _ in 0..<5 {
            paths = paths.flatMap { prefix in pieces.map { prefix + $0 } }
            for path in paths {
                for merge in [true, false] {
                    let raw = "/" + path
                    let fast = RequestTarget.normalize(raw, mergeSlashes: merge)
                    let full = RequestTarget.normalize(raw, mergeSlashes: merge, shortcut: false)
                    switch (fast, full) {
                    case (.success(let a), .success(let b)):
                        #expect(a.path == b.path, "\(raw) merge=\(merge)")
                    case (.failure(let a), .failure(let b)):
                        #expect(a.detail == b.detail, "\(raw) merge=\(merge)")
                    default:
                        Issue.record("\(raw) merge=\(merge): \(fast) against \(full)")
                    }
                    checked += 1
                }
            }
        }
        #expect(checked > 500_000)
    }
}
