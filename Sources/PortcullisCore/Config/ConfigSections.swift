internal import Yams

/// What the section readers found, with the places ``ConfigValidator`` reports its findings at.
struct ConfigSections {
    /// The top-level sections, for whether a check's inputs were read without error.
    enum Section: Hashable {
        case top, server, decisions, jwt, users, tokenEndpoint
    }

    let top: ConfigFields
    /// The sections whose reading found an error.
    private(set) var withErrors: Set<Section> = []
    var server = ServerSection()
    var decisions: DecisionsSection?
    var jwt = JWTConfig()
    var users: [UserConfig] = []
    var tokenEndpoint: TokenEndpointSection?
    var apiKeys: [APIKeyConfig] = []
    var upstreams = UpstreamsSection()
    var routes: [RouteDraft] = []

    init(top: ConfigFields) { self.top = top }

    /// Runs one section's reader and notes whether it found an error.
    mutating func reading<T>(_ section: Section, _ reader: ConfigReader, _ read: () -> T) -> T {
        let before = reader.errorCount
        let value = read()
        // The top level's own unknown keys are found when it is opened, before any section.
        if reader.errorCount > (section == .top ? 0 : before) { self.withErrors.insert(section) }
        return value
    }
}

struct ServerSection {
    var config = ServerConfig()
    /// `listen`, when given.
    var listenNode: Node?
    /// `admin_listen`, when given as a string: it may not share a port with `listen`.
    var adminListenNode: Node?
    /// `tls`, when both files are named: the certificate must be PEM and the key its own.
    var tls: (certificate: ConfigPath, key: ConfigPath)?
}

struct DecisionsSection {
    /// `nil` when the section has an error that leaves no usable service.
    var config: DecisionsConfig?
    /// `listen` with its place, even when the rest of the section is unusable.
    var listen: (address: ListenAddress, node: Node)?
}

struct TokenEndpointSection {
    var config: TokenEndpointConfig
    /// The section's value; a missing issuer is reported at its key.
    var node: Node
    /// `signing_key`, where a key the gateway's own issuer would refuse is reported.
    var signingKeyNode: Node
}

struct UpstreamsSection {
    var upstreams: [String: UpstreamConfig] = [:]
    /// Each upstream's `tls`, in file order.
    var tls: [UpstreamTLSDraft] = []
}

/// One upstream's `tls` as written; its files are read and checked against each other later.
struct UpstreamTLSDraft {
    /// `upstream 'name'`.
    var what: String
    var url: String
    /// The `tls` mapping, where findings about it as a whole are reported.
    var node: Node
    var caFile: ConfigPath?
    var clientCertFile: ConfigPath?
    var clientKeyFile: ConfigPath?
}

/// One entry of `routes` as read, with what refers to other sections.
struct RouteDraft {
    /// `nil` when the entry's path could not be read: only its upstream is checked further.
    var route: RouteConfig?
    /// The entry, named `route 'name'`.
    var fields: ConfigFields
    /// `upstream`, when given as a string.
    var upstream: String?
    /// `issuers` as written, each with its place.
    var issuers: [(name: String, node: Node)] = []
}
