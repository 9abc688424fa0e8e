@testable import PortcullisCore
import Testing

/// Resolves relative paths against `/etc/gateway`, as a configuration file there would.
private struct FolderEnvironment: ConfigEnvironment {
    func variable(_ name: String) -> String? { nil }
    func readFile(_ path: String) throws(FileReadError) -> [UInt8] { throw FileReadError("no such file") }
    func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : "/etc/gateway/" + path }
}

@Suite("Keyed fields of a configuration mapping")
struct ConfigFieldsTests {
    /// Opens the top-level mapping of `yaml` against `keys`.
    func open(_ yaml: String, keys: [String]) throws -> (ConfigFields, ConfigReader) {
        let reader = ConfigReader(file: "f.yaml", environment: FolderEnvironment())
        let root = try #require(ConfigLoader.compose(yaml, reader))
        let fields = try #require(reader.mapping(root, "server", keys: keys))
        return (fields, reader)
    }

    @Test("each accessor reads its kind of value, and an absent key is nil without a finding")
    func typedValues() throws {
        let yaml = """
            realm: R
            dry_run: true
            status: 403
            idle_timeout: 90s
            body: 1MiB
            proxies: [10.0.0.0/8, "::1"]
            tls: { cert_file: c.pem }
            """
        let keys = ["realm", "dry_run", "status", "idle_timeout", "body", "proxies", "tls", "absent"]
        let (fields, reader) = try self.open(yaml, keys: keys)
        #expect(fields.string("realm") == "R")
        #expect(fields.bool("dry_run") == true)
        #expect(fields.integer("status", range: 100...599) == 403)
        #expect(fields.duration("idle_timeout") == 90_000)
        #expect(fields.size("body") == 1 << 20)
        #expect(fields.stringList("proxies")?.map(\.0) == ["10.0.0.0/8", "::1"])
        #expect(fields.list("proxies")?.count == 2)
        let tls = try #require(fields.mapping("tls", keys: ["cert_file"]))
        #expect(tls.path("cert_file")?.written == "c.pem")
        #expect(tls.path("cert_file")?.resolved == "/etc/gateway/c.pem")
        #expect(fields.string("absent") == nil)
        #expect(fields.has("realm") && !fields.has("absent"))
        #expect(reader.diagnostics.all.isEmpty, "\(reader.diagnostics)")
    }

    @Test("a bad value is reported at its own place, labelled with the mapping's prefix")
    func badValues() throws {
        let (fields, reader) = try self.open("idle_timeout: soon\ndry_run: yes\nstatus: 7\n", keys: ["idle_timeout", "dry_run", "status"])
        #expect(fields.duration("idle_timeout") == nil)
        #expect(fields.bool("dry_run") == nil)
        #expect(fields.integer("status", "the status", range: 100...599) == nil)
        #expect(
            reader.diagnostics.all.map(\.description) == [
                "f.yaml:1:15: error: server.idle_timeout: 'soon' is not a duration (use 250ms, 30s, 5m, 2h or 14d)",
                "f.yaml:2:10: error: server.dry_run must be true or false, found a string",
                "f.yaml:3:9: error: the status must be between 100 and 599",
            ])
    }

    @Test("an unknown key is reported once, where it is written, with the nearest known key")
    func unknownKeys() throws {
        let (fields, reader) = try self.open("realm: R\nidle_timout: 5s\n", keys: ["realm", "idle_timeout"])
        #expect(fields.string("realm") == "R")
        #expect(!fields.has("idle_timout"))
        #expect(
            reader.diagnostics.all.map(\.description) == [
                "f.yaml:2:1: error: unknown key 'idle_timout' in server; did you mean 'idle_timeout'?"
            ])
    }

    @Test("a missing required key is reported at the mapping, under the name the entry has by then")
    func requiredKeys() throws {
        let (opened, reader) = try self.open("  username: ann\n  scopes: [a]\n", keys: ["username", "scopes", "password_hash"])
        let fields = opened.named("user 'ann'")
        #expect(fields.string("password_hash", required: true) == nil)
        #expect(fields.label("scopes") == "user 'ann' scopes")
        #expect(fields.required("password_hash", as: "an account") == nil)
        #expect(
            reader.diagnostics.all.map(\.description) == [
                "f.yaml:1:3: error: user 'ann' is missing the required key 'password_hash'",
                "f.yaml:1:3: error: an account is missing the required key 'password_hash'",
            ])
    }
}

@Suite("Header names")
struct HeaderNameTests {
    @Test("a token is letters, digits and !#$%&'*+-.^_`|~, byte for byte")
    func tokenBytes() {
        let others = Set("!#$%&'*+-.^_`|~".utf8)
        for byte in 0...255 {
            let text = String(decoding: [UInt8(byte)], as: UTF8.self)
            let expected =
                byte < 128 && (Character(Unicode.Scalar(UInt8(byte))).isLetter || Character(Unicode.Scalar(UInt8(byte))).isNumber
                    || others.contains(UInt8(byte)))
            #expect(HeaderName.isToken("X" + text + "y") == expected, "byte \(byte)")
        }
        #expect(!HeaderName.isToken(""))
        #expect(HeaderName.isToken("X-Auth-Subject"))
    }
}
