internal import Yams

/// `decisions:` (contract §11): the decision service's listener, which request it decides, and
/// who may ask.
extension ConfigLoader {
    static let decisionsKeys = ["listen", "request_from", "trusted_proxies", "path_prefix"]

    static func readDecisions(_ node: Node, _ reader: ConfigReader) -> DecisionsSection? {
        guard let fields = reader.mapping(node, "decisions", keys: self.decisionsKeys) else { return nil }
        var section = DecisionsSection()
        if let text = fields.string("listen", allowEmpty: true), !text.isEmpty, let value = fields["listen"] {
            if let parsed = ScalarParsers.listenAddress(text) {
                section.listen = (ListenAddress(host: parsed.host, port: parsed.port), value)
            } else {
                reader.error(.badValue, value, "decisions.listen: '\(text)' is not HOST:PORT, or \"\" to disable the decision service")
            }
        }
        var requestFrom: DecisionsConfig.RequestFrom?
        if let text = fields.string("request_from", required: true), let value = fields["request_from"] {
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
        if let items = fields.stringList("trusted_proxies"), let value = fields["trusted_proxies"] {
            trusted = self.cidrs(items, reader)
            if items.isEmpty {
                reader.error(.badValue, value, "decisions.trusted_proxies is empty: no peer could ask; leave it out for loopback only")
            }
        }
        var pathPrefix = ""
        if let text = fields.string("path_prefix", allowEmpty: true), let value = fields["path_prefix"] {
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
        if let requestFrom {
            section.config = DecisionsConfig(
                listen: section.listen?.address, requestFrom: requestFrom, trustedProxies: trusted, pathPrefix: pathPrefix,
                location: reader.location(node))
        }
        return section
    }
}
