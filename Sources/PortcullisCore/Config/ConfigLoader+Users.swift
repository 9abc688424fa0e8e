internal import Yams

/// `users:` (or `users_file:`) and `api_keys:`: the local credentials.
extension ConfigLoader {
    static let userKeys = ["username", "password_hash", "scopes", "disabled", "full_name", "email"]
    static let apiKeyKeys = ["name", "key_hash", "scopes", "in", "param"]

    static func readUsers(_ node: Node, _ reader: ConfigReader) -> [UserConfig] {
        guard let items = reader.sequence(node, "users") else { return [] }
        var users: [UserConfig] = []
        var seen = Set<String>()
        for item in items {
            guard let opened = reader.mapping(item, "a user", keys: self.userKeys) else { continue }
            guard let name = opened.string("username", "username", required: true), let nameNode = opened["username"]
            else { continue }
            if !seen.insert(name).inserted { reader.error(.duplicateName, nameNode, "the user '\(name)' is listed twice") }
            let fields = opened.named("user '\(name)'")
            guard let hash = fields.string("password_hash", required: true), let hashNode = fields["password_hash"] else { continue }
            if !(hash.hasPrefix("$argon2id$") || hash.hasPrefix("$argon2i$") || hash.hasPrefix("$argon2d$")) {
                reader.error(.badValue, hashNode, "user '\(name)': password_hash must be an Argon2 PHC string ($argon2id$v=19$m=…); make one with 'portcullis hash-password'")
            }
            let scopes = fields.stringList("scopes")?.map(\.0) ?? []
            let disabled = fields.bool("disabled") ?? false
            let fullName = fields.string("full_name", allowEmpty: true)
            let email = fields.string("email", allowEmpty: true)
            users.append(
                UserConfig(username: name, passwordHash: hash, scopes: scopes, disabled: disabled, fullName: fullName, email: email))
        }
        return users
    }

    /// `users_file`: the same list as `users`, in its own YAML file (a list, or `users:` with one).
    static func readUsersFile(_ path: ConfigPath, _ reader: ConfigReader) -> [UserConfig] {
        let text: String
        do {
            guard let valid = String(validating: try reader.environment.readFile(path.resolved), as: UTF8.self) else {
                reader.error(.unreadableFile, path.node, "users_file \(path.resolved) is not valid UTF-8")
                return []
            }
            text = valid
        } catch {
            reader.error(.unreadableFile, path.node, "cannot read users_file \(path.resolved): \(error)")
            return []
        }
        let fileReader = ConfigReader(file: path.resolved, environment: reader.environment)
        defer { for diagnostic in fileReader.diagnostics.all { reader.add(diagnostic) } }
        guard let root = self.compose(text, fileReader) else { return [] }
        if case .mapping = root {
            guard let fields = fileReader.mapping(root, "the users file", keys: ["users"]), let list = fields.required("users")
            else { return [] }
            return self.readUsers(list, fileReader)
        }
        return self.readUsers(root, fileReader)
    }

    static func readAPIKeys(_ node: Node, _ reader: ConfigReader) -> [APIKeyConfig] {
        guard let items = reader.sequence(node, "api_keys") else { return [] }
        var keys: [APIKeyConfig] = []
        var seen = Set<String>()
        for item in items {
            guard let opened = reader.mapping(item, "an API key", keys: self.apiKeyKeys) else { continue }
            guard let name = opened.string("name", "API key name", required: true), let nameNode = opened["name"] else { continue }
            if !seen.insert(name).inserted { reader.error(.duplicateName, nameNode, "the API key '\(name)' is listed twice") }
            let what = "API key '\(name)'"
            let fields = opened.named(what)
            guard let text = fields.string("key_hash", required: true), let hashNode = fields["key_hash"] else { continue }
            let hash: APIKeyConfig.Hash
            if text.hasPrefix("sha256:") {
                let hex = Array(text.dropFirst(7).utf8)
                guard hex.count == 64, hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                    reader.error(.badValue, hashNode, "\(what): sha256: must be followed by 64 lower-case hex digits")
                    continue
                }
                hash = .sha256(stride(from: 0, to: 64, by: 2).map { UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16)! })
            } else if text.hasPrefix("$argon2id$") || text.hasPrefix("$argon2i$") || text.hasPrefix("$argon2d$") {
                hash = .argon2(text)
            } else {
                reader.error(.badValue, hashNode, "\(what): key_hash must be sha256:<hex> or an Argon2 PHC string")
                continue
            }
            let scopes = fields.stringList("scopes")?.map(\.0) ?? []
            var location = APIKeyConfig.Location.header
            if let text = fields.string("in"), let node = fields["in"] {
                if let value = APIKeyConfig.Location(rawValue: text) {
                    location = value
                } else {
                    reader.error(.badValue, node, "\(what) in must be header, query or cookie")
                }
            }
            var param = "X-API-Key"
            if let text = fields.string("param"), let node = fields["param"] {
                switch location {
                case .header where !HeaderName.isToken(text):
                    reader.error(.badValue, node, "\(what) param '\(text)' is not a valid header name")
                case .cookie where !HeaderName.isToken(text):
                    reader.error(.badValue, node, "\(what) param '\(text)' is not a valid cookie name (RFC 6265 §4.1.1)")
                case .query where text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }):
                    reader.error(.badValue, node, "\(what) param must not contain control characters")
                default:
                    break
                }
                param = text
            }
            keys.append(APIKeyConfig(name: name, hash: hash, scopes: scopes, location: location, param: param))
        }
        return keys
    }
}
