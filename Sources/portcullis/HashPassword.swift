import ArgumentParser
import PortcullisCrypto
#if canImport(Glibc)
import Glibc
#endif

struct HashPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an Argon2id PHC string for a password (m=65536, t=3, p=4, 16-byte random salt).",
        discussion: "From a terminal the password is read twice without echo; otherwise, or with --password-stdin, from standard input (one trailing newline is stripped).")

    @Flag(name: .long, help: "Read the password from standard input.")
    var passwordStdin = false

    func run() throws {
        let password: [UInt8]
        if !self.passwordStdin && isatty(0) == 1 {
            let first = try Self.readHidden(prompt: "Password: ")
            let second = try Self.readHidden(prompt: "Again: ")
            guard first == second else {
                printError("the passwords differ")
                throw ExitCode(2)
            }
            password = first
        } else {
            var bytes = Self.readAll(fd: 0)
            if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            password = bytes
        }
        guard !password.isEmpty else {
            printError("the password is empty")
            throw ExitCode(2)
        }
        guard let encoded = Argon2.hash(password) else {
            printError("hashing failed")
            throw ExitCode(2)
        }
        printOut(encoded)
    }

    static func readAll(fd: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return result
    }

    /// Reads one line from the terminal with echo turned off, restoring the terminal after.
    static func readHidden(prompt: String) throws -> [UInt8] {
        var text = prompt
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        var original = termios()
        tcgetattr(0, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &silent)
        defer {
            tcsetattr(0, TCSAFLUSH, &original)
            _ = write(2, "\n", 1)
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(0, &byte, 1) == 1 && byte != UInt8(ascii: "\n") { line.append(byte) }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }
}
