internal import Yams

/// `decisions:` (contract §11): the decision service's listener, which request it decides, and
/// who may ask.
extension ConfigLoader {
    static let decisionsKeys = ["listen", "request_from", "trusted_proxies", "path_prefix"]

    static func readDecisions(_ node: Node, server: ServerConfig, _ reader: ConfigReader) -> DecisionsConfig? {
        guard let fields = reader.mapping(node, "decisions", keys: self.decisionsKeys) else { return nil }
        var listen: ListenAddress?
        if let value = fields["listen"], let text = reader.string(value, "decisions.listen", allowEmpty: true), !text.isEmpty {
            if let parsed = ScalarParsers.listenAddress(text) {
                let address = ListenAddress(host: parsed.host, port: parsed.port)
                listen = address
                for (other, name) in [(server.listen, "server.listen"), (server.adminListen, "server.admin_listen")] {
                    if let other, Self.sharePort(address, other) {
                        reader.error(.badValue, value, "decisions.listen \(address) would take the port of \(name) \(other)")
                    }
                }
            } else {
                reader.error(.badValue, value, "decisions.listen: '\(text)' is not HOST:PORT, or \"\" to disable the decision service")
            }
        }
        var requestFrom: DecisionsConfig.RequestFrom?
        if let value = fields.required("request_from", reader, "decisions"), let text = reader.string(value, "decisions.request_from") {
            if let mode = DecisionsConfig.RequestFrom(rawValue: text) {
                requestFrom = mode
            } else {
                let names = DecisionsConfig.RequestFrom.allCases.map(\.rawValue)
                var message =
                    "decisions.request_from must be original (nginx auth_request), forwarded (Traefik forwardAuth) or target (Envoy ext_authz), found '\(text)'"
                if let suggestion = closestMatch(text, in: names) { message += "; did you mean '\(suggestion)'?" }
                reader.error(.badValue, value, message)
            }
        }
        var trusted = DecisionsConfig.loopback
        if let value = fields["trusted_proxies"], let items = reader.stringList(value, "decisions.trusted_proxies") {
            trusted = []
            for (text, itemNode) in items {
                if let cidr = CIDR(text) {
                    trusted.append(cidr)
                } else {
                    reader.error(.badValue, itemNode, "'\(text)' is not an IP address or CIDR block")
                }
            }
            if items.isEmpty {
                reader.error(.badValue, value, "decisions.trusted_proxies is empty: no peer could ask; leave it out for loopback only")
            }
        }
        var pathPrefix = ""
        if let value = fields["path_prefix"], let text = reader.string(value, "decisions.path_prefix", allowEmpty: true) {
            var prefix = text
            while prefix.hasSuffix("/") { prefix.removeLast() }
            if let requestFrom, requestFrom != .target, !prefix.isEmpty {
                reader.error(
                    .badValue, value,
                    "decisions.path_prefix applies to request_from: target only; with \(requestFrom.rawValue) the path comes from a header")
            } else if !prefix.isEmpty && (!prefix.hasPrefix("/") || prefix.contains("*") || prefix.contains("{")
                || !Self.isNormalPath(prefix, mergeSlashes: false))
            {
                reader.error(.badValue, value, "decisions.path_prefix must be a literal path starting with '/', as the check request spells it")
            } else {
                pathPrefix = prefix
            }
        }
        guard let requestFrom else { return nil }
        return DecisionsConfig(
            listen: listen, requestFrom: requestFrom, trustedProxies: trusted, pathPrefix: pathPrefix, location: reader.location(node))
    }
}
