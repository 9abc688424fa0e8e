/// A `postgresql://USER@HOST:PORT/DATABASE?sslmode=…` store (`token_endpoint.store`): where
/// the refresh tokens and login-throttle counters of several replicas live together.
///
/// The password never appears in the URL: it comes from the environment variable named by
/// `token_endpoint.store_password_env`, and ``description`` (used in logs) leaves it out.
package struct PostgresStoreSettings: Sendable, Hashable, CustomStringConvertible {
    /// libpq's `sslmode` values that a client without client certificates can honour.
    package enum SSLMode: String, Sendable, Hashable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, unverified; plain otherwise (libpq's default).
        case prefer
        /// TLS or no connection, the certificate unverified.
        case require
        /// TLS with the certificate chain verified, not the host name.
        case verifyCA = "verify-ca"
        /// TLS with the chain and the host name verified.
        case verifyFull = "verify-full"
    }

    package var host: String
    package var port: Int
    package var user: String
    package var database: String
    package var sslMode: SSLMode
    /// `sslrootcert`: the CA certificates (PEM) that verify the server; the system's when absent.
    package var sslRootCert: String?
    /// From the variable `store_password_env` names, read with the configuration.
    package var password: String?

    package init(host: String, port: Int, user: String, database: String, sslMode: SSLMode, sslRootCert: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
    }

    /// The URL without any secret, for logs.
    package var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        var text = "postgresql://\(self.user)@\(host):\(self.port)/\(self.database)?sslmode=\(self.sslMode.rawValue)"
        if let root = self.sslRootCert { text += "&sslrootcert=\(root)" }
        return text
    }

    /// Why a store URL was refused; the message never quotes a password.
    package struct URLError: Error, Sendable, Equatable {
        package var message: String
    }

    /// Reads `postgresql://` (or `postgres://`) URLs of one host. User and database are
    /// required; the port defaults to 5432 and `sslmode` to `prefer`, as with libpq. A
    /// password in the URL is refused: it would sit in a file that is read by more people,
    /// and copied to more places, than the secret should be.
    package static func parse(_ text: String) throws(URLError) -> PostgresStoreSettings {
        let lowered = text.lowercased()
        guard let scheme = ["postgresql://", "postgres://"].first(where: { lowered.hasPrefix($0) }) else {
            throw URLError(message: "a PostgreSQL store URL starts with postgresql://")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw URLError(message: "the store URL must name a database: postgresql://USER@HOST:PORT/DATABASE")
        }
        let authority = rest[..<slash]
        guard let at = authority.lastIndex(of: "@") else {
            throw URLError(message: "the store URL must name a user: postgresql://USER@HOST:PORT/DATABASE")
        }
        let userInfo = authority[..<at]
        if userInfo.contains(":") {
            throw URLError(
                message: "the store URL must not contain a password; name an environment variable that holds it with token_endpoint.store_password_env")
        }
        guard let user = Self.percentDecoded(userInfo), !user.isEmpty else {
            throw URLError(message: "the store URL must name a user: postgresql://USER@HOST:PORT/DATABASE")
        }
        let (host, port) = try Self.hostAndPort(authority[authority.index(after: at)...])
        let path = rest[rest.index(after: slash)...]
        guard let database = Self.percentDecoded(path), !database.isEmpty, !database.contains("/") else {
            throw URLError(message: "the store URL must name one database: postgresql://USER@HOST:PORT/DATABASE")
        }
        var settings = PostgresStoreSettings(host: host, port: port, user: user, database: database, sslMode: .prefer)
        var seen = Set<String>()
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            guard let value = Self.percentDecoded(parts.count > 1 ? parts[1] : ""), !value.isEmpty else {
                throw URLError(message: "the store URL parameter \(name) needs a value")
            }
            guard seen.insert(name).inserted else { throw URLError(message: "the store URL parameter \(name) appears twice") }
            switch name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    let known = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw URLError(message: "sslmode must be one of \(known)")
                }
                settings.sslMode = mode
            case "sslrootcert":
                settings.sslRootCert = value
            case "password":
                throw URLError(
                    message: "the store URL must not contain a password; name an environment variable that holds it with token_endpoint.store_password_env")
            default:
                throw URLError(message: "unknown store URL parameter '\(name)'; known: sslmode, sslrootcert")
            }
        }
        if settings.sslRootCert != nil, settings.sslMode != .verifyCA, settings.sslMode != .verifyFull {
            throw URLError(message: "sslrootcert is used only with sslmode=verify-ca or sslmode=verify-full")
        }
        return settings
    }

    private static func hostAndPort(_ text: Substring) throws(URLError) -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw URLError(message: "the store URL has an unclosed [ in its host") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw URLError(message: "the store URL has text after its [host]") }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        if host.contains(",") { throw URLError(message: "the store URL must name one host") }
        guard let decoded = Self.percentDecoded(host), !decoded.isEmpty else {
            throw URLError(message: "the store URL must name a host: postgresql://USER@HOST:PORT/DATABASE")
        }
        var port = 5432
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(portText),
                (1...65535).contains(value)
            else { throw URLError(message: "the store URL port must be a number from 1 to 65535") }
            port = value
        }
        return (decoded, port)
    }

    /// RFC 3986 percent-decoding as UTF-8; `nil` for a bad escape or bytes that are not UTF-8.
    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
