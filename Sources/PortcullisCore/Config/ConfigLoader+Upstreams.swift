internal import Yams

/// `upstreams:`: the services requests are forwarded to, by name.
extension ConfigLoader {
    static let upstreamKeys = ["url", "connect_timeout", "timeout", "preserve_host", "tls"]

    static func readUpstreams(_ node: Node, _ reader: ConfigReader) -> UpstreamsSection {
        var section = UpstreamsSection()
        guard case .mapping(let mapping) = node else {
            reader.error(.wrongType, node, "upstreams must be a mapping of names to upstreams")
            return section
        }
        for (keyNode, value) in mapping {
            guard let name = reader.string(keyNode, "an upstream name") else { continue }
            let what = "upstream '\(name)'"
            guard let fields = reader.mapping(value, what, keys: self.upstreamKeys)?.named(what) else { continue }
            guard let url = fields.string("url", required: true), let urlNode = fields["url"] else { continue }
            guard let target = self.upstreamTarget(url) else {
                reader.error(
                    .badValue, urlNode,
                    "\(what): '\(url)' is not an upstream URL (http://host:port, https://host:port or unix:/path/to.sock)")
                continue
            }
            var upstream = UpstreamConfig(name: name, url: url, target: target, location: reader.location(keyNode))
            if let value = fields.duration("connect_timeout") { upstream.connectTimeout = value }
            if let value = fields.duration("timeout") { upstream.timeout = value }
            if let value = fields.bool("preserve_host") { upstream.preserveHost = value }
            if let tls = fields.mapping("tls", keys: ["ca_file", "client_cert_file", "client_key_file"]), let tlsNode = fields["tls"] {
                let draft = UpstreamTLSDraft(
                    what: what, url: url, node: tlsNode, caFile: tls.path("ca_file"), clientCertFile: tls.path("client_cert_file"),
                    clientKeyFile: tls.path("client_key_file"))
                upstream.tls = UpstreamTLS(
                    caFile: draft.caFile?.resolved, clientCertFile: draft.clientCertFile?.resolved,
                    clientKeyFile: draft.clientKeyFile?.resolved)
                section.tls.append(draft)
            }
            section.upstreams[name] = upstream
        }
        return section
    }

    static func upstreamTarget(_ url: String) -> UpstreamConfig.Target? {
        if url.hasPrefix("unix:") {
            let path = String(url.dropFirst(5))
            guard path.hasPrefix("/"), path.count > 1 else { return nil }
            return .unixSocket(path: path)
        }
        let lowered = url.lowercased()
        let scheme: String
        if lowered.hasPrefix("http://") {
            scheme = "http://"
        } else if lowered.hasPrefix("https://") {
            scheme = "https://"
        } else {
            return nil
        }
        let rest = url.dropFirst(scheme.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var basePath = String(rest[slash...])
        guard !authority.isEmpty, !authority.contains("@"), !authority.contains("?"), !authority.contains("#"),
            !basePath.contains("?"), !basePath.contains("#"),
            authority.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        while basePath.hasSuffix("/") { basePath.removeLast() }
        // host, host:port, [v6] or [v6]:port, with a port from 1 to 65535.
        let host = String(authority)
        let hasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
        guard let parsed = ScalarParsers.listenAddress(hasPort ? host : host + ":80"), parsed.port > 0 else { return nil }
        // The base path goes out as written: it must be a path a server can take.
        if !basePath.isEmpty, case .failure = RequestTarget.normalize(basePath, mergeSlashes: false, shortcut: false) { return nil }
        return .http(origin: scheme + authority, basePath: basePath)
    }
}
