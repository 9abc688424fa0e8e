internal import Yams

/// One mapping of a configuration file, opened against the keys it may hold, with a typed
/// accessor per kind of value.
///
/// Each accessor reads one key and records any problem at the value's own `FILE:LINE:COL`, so a
/// section reader is a list of `fields.duration("idle_timeout")` calls. An absent key reads as
/// `nil` without a finding; ``required(_:as:)`` reports a missing key at the mapping's place.
/// Keys outside the declared set are reported once, when ``ConfigReader/mapping(_:_:keys:)``
/// opens the mapping, at the key's place and with the closest known key as a suggestion.
///
/// Messages name a value by its label: ``prefix`` followed by the key, so `server.` labels
/// `realm` as `server.realm`, and `route 'me' ` labels `strip_prefix` as
/// `route 'me' strip_prefix`. Accessors take an explicit label where a message says otherwise.
struct ConfigFields {
    let reader: ConfigReader
    let node: Node
    /// How messages name the mapping itself: `server`, `route 'me'`.
    private(set) var name: String
    /// What comes before a key in a value's label.
    private(set) var prefix: String
    private(set) var entries: [String: (key: Node, value: Node)]

    init(reader: ConfigReader, node: Node, name: String, entries: [String: (key: Node, value: Node)]) {
        self.reader = reader
        self.node = node
        self.name = name
        self.prefix = name + "."
        self.entries = entries
    }

    /// The same mapping under the name its entry is known by once that name is read: `a user`
    /// becomes `user 'johndoe'`, whose values are labelled `user 'johndoe' scopes`.
    func named(_ name: String, prefix: String? = nil) -> ConfigFields {
        var copy = self
        copy.name = name
        copy.prefix = prefix ?? name + " "
        return copy
    }

    /// The value node of `key`, or `nil` when the key is absent.
    subscript(_ key: String) -> Node? { self.entries[key]?.value }

    /// The key node of `key`: findings about the key as a whole are reported there.
    func keyNode(_ key: String) -> Node? { self.entries[key]?.key }

    func has(_ key: String) -> Bool { self.entries[key] != nil }

    func label(_ key: String) -> String { self.prefix + key }

    /// The value of `key`; when absent, reports the missing key at the mapping's place, naming
    /// the mapping as `what` (default: ``name``).
    func required(_ key: String, as what: String? = nil) -> Node? {
        if let value = self.entries[key]?.value { return value }
        self.reader.error(.missingKey, self.node, "\(what ?? self.name) is missing the required key '\(key)'")
        return nil
    }

    private func value(_ key: String, required: Bool) -> Node? {
        required ? self.required(key) : self[key]
    }

    func string(_ key: String, _ label: String? = nil, allowEmpty: Bool = false, required: Bool = false) -> String? {
        guard let value = self.value(key, required: required) else { return nil }
        return self.reader.string(value, label ?? self.label(key), allowEmpty: allowEmpty)
    }

    func bool(_ key: String, _ label: String? = nil) -> Bool? {
        guard let value = self[key] else { return nil }
        return self.reader.bool(value, label ?? self.label(key))
    }

    func integer(_ key: String, _ label: String? = nil, range: ClosedRange<Int>) -> Int? {
        guard let value = self[key] else { return nil }
        return self.reader.integer(value, label ?? self.label(key), range: range)
    }

    func duration(_ key: String, _ label: String? = nil, allowZero: Bool = false) -> Milliseconds? {
        guard let value = self[key] else { return nil }
        return self.reader.duration(value, label ?? self.label(key), allowZero: allowZero)
    }

    func size(_ key: String, _ label: String? = nil) -> Int? {
        guard let value = self[key] else { return nil }
        return self.reader.size(value, label ?? self.label(key))
    }

    /// A list of strings, each with its node for findings about one entry.
    func stringList(_ key: String, _ label: String? = nil, required: Bool = false) -> [(String, Node)]? {
        guard let value = self.value(key, required: required) else { return nil }
        return self.reader.stringList(value, label ?? self.label(key))
    }

    /// A list of anything, for entries that are mappings of their own.
    func list(_ key: String, _ label: String? = nil) -> [Node]? {
        guard let value = self[key] else { return nil }
        return self.reader.sequence(value, label ?? self.label(key))
    }

    /// A nested mapping, opened against its own keys.
    func mapping(_ key: String, keys: [String], _ label: String? = nil, required: Bool = false) -> ConfigFields? {
        guard let value = self.value(key, required: required) else { return nil }
        return self.reader.mapping(value, label ?? self.label(key), keys: keys)
    }

    /// A file name, resolved against the configuration file's folder.
    func path(_ key: String, _ label: String? = nil, required: Bool = false) -> ConfigPath? {
        guard let written = self.string(key, label, required: required), let node = self[key] else { return nil }
        return ConfigPath(written: written, resolved: self.reader.resolve(written), node: node)
    }
}

/// A file named by the configuration: as written, for messages that quote the file, and
/// resolved against the configuration file's folder, for opening it.
struct ConfigPath {
    var written: String
    var resolved: String
    /// Where the name is written, for findings about the file.
    var node: Node
}
