import PortcullisCore
import Testing

@Suite("Path patterns (contract §3)")
struct PathPatternTests {
    static let table: [(pattern: String, path: String, matches: Bool)] = [
        ("/status", "/status", true),
        ("/status", "/status/", false),
        ("/status", "/Status", false),
        ("/users/me/", "/users/me/", true),
        ("/users/me/", "/users/me", false),
        ("/a/**", "/a", true),
        ("/a/**", "/a/", true),
        ("/a/**", "/a/b/c", true),
        ("/a/**", "/ab", false),
        ("/a/**", "/", false),
        ("/**", "/", true),
        ("/**", "/anything/at/all", true),
        ("/", "/", true),
        ("/", "/a", false),
        ("/items/*", "/items/42", true),
        ("/items/*", "/items/", false),
        ("/items/*", "/items/42/x", false),
        ("/items/{id}/tags", "/items/7/tags", true),
        ("/items/{id}/tags", "/items//tags", false),
        ("/*/x", "/a/x", true),
    ]

    @Test("segment matching", arguments: Self.table)
    func matching(_ pattern: String, _ path: String, _ expected: Bool) throws {
        let compiled = try PathPattern(pattern, mergeSlashes: true)
        #expect(compiled.matches(path[...]) == expected)
    }

    @Test("bad patterns are refused")
    func refusesBadPatterns() {
        #expect(throws: PathPattern.ParseError.mustStartWithSlash) { try PathPattern("items", mergeSlashes: true) }
        #expect(throws: PathPattern.ParseError.restNotLast) { try PathPattern("/a/**/b", mergeSlashes: true) }
        #expect(throws: PathPattern.ParseError.dotSegment) { try PathPattern("/a/../b", mergeSlashes: true) }
        #expect(throws: PathPattern.ParseError.emptySegment) { try PathPattern("/a//b", mergeSlashes: true) }
        #expect(throws: PathPattern.ParseError.badName("{a-b}")) { try PathPattern("/{a-b}", mergeSlashes: true) }
        for escape in ["/a/%2F", "/a/%2fb", "/%5C", "/a%00", "/a/%0A", "/a/%7F", "/a/%zz", "/a/%4"] {
            #expect(throws: PathPattern.ParseError.self, "\(escape)") { try PathPattern(escape, mergeSlashes: true) }
        }
        #expect(throws: PathPattern.ParseError.dotSegment) { try PathPattern("/a/%2E/b", mergeSlashes: true) }
        #expect(throws: PathPattern.ParseError.dotSegment) { try PathPattern("/a/%2e%2E", mergeSlashes: true) }
    }

    @Test("escapes in literals match the way normalized requests spell them")
    func escapedLiterals() throws {
        let pattern = try PathPattern("/enc/%3a/%7e/%41b", mergeSlashes: true)
        #expect(pattern.segments == [.literal("enc"), .literal("%3A"), .literal("~"), .literal("Ab")])
        for request in ["/enc/%3a/%7e/%41b", "/enc/%3A/~/Ab", "/enc/%3A/%7E/A%62"] {
            guard case .success(let target) = RequestTarget.normalize(request, mergeSlashes: true) else {
                Issue.record("\(request) was refused")
                continue
            }
            #expect(pattern.matches(target.path[...]), "\(request)")
        }
        #expect(!pattern.matches("/enc/:/~/Ab"))
    }

    @Test("coverage finds shadowed patterns")
    func coverage() throws {
        func covers(_ a: String, _ b: String) throws -> Bool {
            try PathPattern(a, mergeSlashes: true).covers(PathPattern(b, mergeSlashes: true))
        }
        #expect(try covers("/a/**", "/a/b"))
        #expect(try covers("/a/**", "/a/**"))
        #expect(try covers("/a/*", "/a/{id}"))
        #expect(try covers("/**", "/"))
        #expect(try !covers("/a/*", "/a/**"))
        #expect(try !covers("/a/b", "/a/*"))
        #expect(try !covers("/a/**", "/b"))
        #expect(try !covers("/a/*", "/a/"))
    }

    @Test("host patterns")
    func hosts() throws {
        let exact = try #require(HostPattern("Admin.Example.com"))
        #expect(exact.matches("admin.example.com"))
        #expect(!exact.matches("x.admin.example.com"))
        let wildcard = try #require(HostPattern("*.example.com"))
        #expect(wildcard.matches("a.example.com"))
        #expect(wildcard.matches("a.b.example.com"))
        #expect(!wildcard.matches("example.com"))
        #expect(!wildcard.matches("badexample.com"))
        #expect(HostPattern("a.*.com") == nil)
    }
}
