import ArgumentParser
import PortcullisCrypto
import PortcullisUpstream

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the linked library versions.")

    static let portcullisVersion = "0.1.0"

    func run() {
        printOut("portcullis \(Self.portcullisVersion)")
        printOut("libcurl: \(CurlVersion.text)")
        printOut("OpenSSL: \(CryptoLibraryVersions.openSSL)")
        printOut("libargon2: \(CryptoLibraryVersions.argon2Algorithm)")
    }
}
