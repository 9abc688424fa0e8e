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

    package func problemAppending(to path: String) -> String? {
        var info = stat()
        if stat(path, &info) == 0 {
            if (info.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
            return access(path, W_OK) == 0 ? nil : "it is not writable"
        }
        let folder = (path as NSString).deletingLastPathComponent
        var folderInfo = stat()
        guard stat(folder.isEmpty ? "." : folder, &folderInfo) == 0, (folderInfo.st_mode & S_IFMT) == S_IFDIR else {
            return "the folder \(folder) does not exist"
        }
        return access(folder.isEmpty ? "." : folder, W_OK) == 0 ? nil : "the folder \(folder) is not writable"
    }
}
