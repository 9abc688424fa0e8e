import Foundation
package import PortcullisCore

/// Secrets from the process environment and key files from disk, relative paths resolved
/// against the configuration file's folder.
package struct ProcessConfigEnvironment: ConfigEnvironment {
    package let folder: String

    package init(configFile: String) {
        self.folder = URL(fileURLWithPath: configFile).deletingLastPathComponent().path
    }

    package func variable(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

    package func readFile(_ path: String) throws(FileReadError) -> [UInt8] { try BoundedFile.read(path) }

    package func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : (self.folder as NSString).appendingPathComponent(path)
    }
}
