import PortcullisCore
import Testing

@Suite("PostgreSQL store settings")
struct PostgresStoreTests {
    struct Good: Sendable, CustomStringConvertible {
        var url: String
        var host: String
        var port: Int
        var user: String
        var database: String
        var sslMode: PostgresStoreSettings.SSLMode
        var description: String { self.url }
    }

    static let good: [Good] = [
        Good(url: "postgresql://portcullis@db.internal:5432/portcullis", host: "db.internal", port: 5432, user: "portcullis",
             database: "portcullis", sslMode: .prefer),
        Good(url: "postgres://p@127.0.0.1/tokens?sslmode=disable", host: "127.0.0.1", port: 5432, user: "p", database: "tokens",
             sslMode: .disable),
        Good(url: "postgresql://gw%40corp@[2001:db8::1]:6432/my%20db?sslmode=verify-full", host: "2001:db8::1", port: 6432,
             user: "gw@corp", database: "my db", sslMode: .verifyFull),
        Good(url: "POSTGRESQL://u@h:1/d?sslmode=require", host: "h", port: 1, user: "u", database: "d", sslMode: .require),
    ]

    @Test("a URL of one host, a user and a database is read", arguments: Self.good)
    func reads(_ good: Good) throws {
        let settings = try PostgresStoreSettings.parse(good.url)
        #expect(settings.host == good.host)
        #expect(settings.port == good.port)
        #expect(settings.user == good.user)
        #expect(settings.database == good.database)
        #expect(settings.sslMode == good.sslMode)
        #expect(settings.password == nil)
    }

    /// Each case: a URL, and a fragment of the message it must get.
    static let bad: [(String, String)] = [
        ("postgresql://u:hunter2@h/d", "must not contain a password"),
        ("postgresql://u:@h/d", "must not contain a password"),
        ("postgresql://u@h/d?password=hunter2", "must not contain a password"),
        ("postgresql://h:5432/d", "must name a user"),
        ("postgresql://u@h:5432", "must name a database"),
        ("postgresql://u@h:5432/", "must name one database"),
        ("postgresql://u@h:5432/a/b", "must name one database"),
        ("postgresql://u@/d", "must name a host"),
        ("postgresql://u@h1,h2/d", "one host"),
        ("postgresql://u@h:0/d", "port"),
        ("postgresql://u@h:65536/d", "port"),
        ("postgresql://u@h:54x/d", "port"),
        ("postgresql://u@[::1/d", "unclosed"),
        ("postgresql://u@h/d?sslmode=allow", "sslmode must be one of disable, prefer, require, verify-ca, verify-full"),
        ("postgresql://u@h/d?sslmode=disable&sslmode=require", "appears twice"),
        ("postgresql://u@h/d?sslmode", "needs a value"),
        ("postgresql://u@h/d?connect_timeout=3", "unknown store URL parameter 'connect_timeout'"),
        ("postgresql://u@h/d?sslmode=require&sslrootcert=ca.pem", "sslrootcert is used only with"),
        ("postgresql://u@h/d%zz", "must name one database"),
        ("mysql://u@h/d", "starts with postgresql://"),
    ]

    @Test("a URL with a mistake or a password is refused, and the password is never quoted", arguments: Self.bad)
    func refuses(_ url: String, _ fragment: String) {
        #expect {
            _ = try PostgresStoreSettings.parse(url)
        } throws: { error in
            guard let error = error as? PostgresStoreSettings.URLError else { return false }
            return error.message.contains(fragment) && !error.message.contains("hunter2")
        }
    }

    @Test("the description, which logs carry, never holds the password")
    func describesWithoutPassword() throws {
        var settings = try PostgresStoreSettings.parse("postgresql://gw@[::1]:6432/tokens?sslmode=verify-full&sslrootcert=/etc/ca.pem")
        settings.password = "hunter2"
        #expect(settings.description == "postgresql://gw@[::1]:6432/tokens?sslmode=verify-full&sslrootcert=/etc/ca.pem")
    }

    static let base = """
        version: 1
        jwt:
          issuers:
            - { issuer: "https://gw", algorithms: [HS256], keys: [ { kid: k, secret_env: S } ] }
        token_endpoint:
          issuer: "https://gw"
          signing_key: { alg: HS256, kid: k, secret_env: S }

        """
    static let tail = """

        upstreams: { u: { url: "http://127.0.0.1:1" } }
        routes: []
        """

    static func load(_ lines: String, variables: [String: String] = [:]) -> ConfigLoader.Result {
        let environment = FixedEnvironment(
            variables: ["S": "0123456789abcdef0123456789abcdef"].merging(variables) { $1 }, files: ["ca.pem": Array("CA".utf8)])
        return ConfigLoader.load(text: Self.base + lines + Self.tail, file: "c.yaml", environment: environment)
    }

    @Test("the password comes from store_password_env and reaches the settings")
    func passwordFromEnvironment() throws {
        let result = Self.load(
            """
              store: "postgresql://gw@db:5432/tokens?sslmode=verify-full&sslrootcert=ca.pem"
              store_password_env: DB_PASSWORD
            """, variables: ["DB_PASSWORD": "hunter2"])
        let config = try #require(result.config, "\(result.diagnostics)")
        guard case .postgresql(let settings)? = config.tokenEndpoint?.store else {
            Issue.record("not a PostgreSQL store")
            return
        }
        #expect(settings.password == "hunter2")
        #expect(settings.sslRootCert == "ca.pem")
    }

    /// Each case: the `token_endpoint` lines, and the `LINE:COL: error:` fragment expected.
    static let broken: [(String, String)] = [
        ("  store: \"postgresql://gw:hunter2@db/tokens\"\n", "8:10: error: token_endpoint.store: the store URL must not contain a password"),
        ("  store: \"postgresql://gw@db/tokens\"\n  store_password_env: NOT_SET\n", "9:23: error: the environment variable NOT_SET is not set"),
        ("  store: \"sqlite:x.sqlite\"\n  store_password_env: DB_PASSWORD\n", "9:23: error: token_endpoint.store_password_env applies only"),
        ("  store_password_env: DB_PASSWORD\n", "8:23: error: token_endpoint.store_password_env applies only"),
        ("  store: \"postgresql://gw@db/t?sslmode=verify-ca&sslrootcert=missing.pem\"\n", "8:10: error: token_endpoint.store: cannot read sslrootcert"),
        ("  store: \"redis://db\"\n", "8:10: error: token_endpoint.store must be sqlite:PATH, postgresql://"),
    ]

    @Test("store mistakes are reported where they are written, without the password", arguments: Self.broken)
    func placesErrors(_ lines: String, _ expected: String) {
        let result = Self.load(lines, variables: ["DB_PASSWORD": "hunter2"])
        let text = result.diagnostics.sorted.map(\.description).joined(separator: "\n")
        #expect(text.contains(expected), "\(text)")
        #expect(!text.contains("hunter2"))
    }

    @Test("the revocation endpoint sits under the token endpoint's path")
    func revocationPath() throws {
        let result = Self.load("  path: /oauth/token\n")
        let endpoint = try #require(result.config?.tokenEndpoint, "\(result.diagnostics)")
        #expect(endpoint.revocationPath == "/oauth/token/revoke")
        #expect(endpoint.metadata(base: "https://gw").contains("\"revocation_endpoint\":\"https://gw/oauth/token/revoke\""))
    }

    @Test("a revocation names its token; the hint is optional")
    func revocationRequest() throws {
        let fields = try FormFields.parse(
            contentType: "application/x-www-form-urlencoded", body: Array("token=abc&token_type_hint=refresh_token".utf8))
        let request = try RevocationRequest.read(fields)
        #expect(request.token == "abc")
        #expect(request.tokenTypeHint == "refresh_token")
        let empty = try FormFields.parse(contentType: "application/x-www-form-urlencoded", body: Array("token=".utf8))
        #expect(throws: OAuthError.self) { try RevocationRequest.read(empty) }
    }
}
