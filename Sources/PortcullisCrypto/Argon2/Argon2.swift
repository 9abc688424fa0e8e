internal import CPortcullisArgon2

/// Argon2 password hashing through libargon2, in the PHC string format
/// (`$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>`).
///
/// Each call costs the configured memory (64 MiB by default) and tens of milliseconds of CPU:
/// never call these on an event loop. The server runs them on its bounded hashing pool.
package enum Argon2 {
    package struct Parameters: Sendable, Hashable {
        package var iterations: UInt32 = 3
        package var memoryKiB: UInt32 = 65_536
        package var parallelism: UInt32 = 4

        package init() {}
    }

    /// Hashes `password` with Argon2id and a fresh 16-byte salt from OpenSSL's generator.
    package static func hash(_ password: [UInt8], parameters: Parameters = Parameters()) -> String? {
        let salt = SecureRandom.bytes(16)
        let length = argon2_encodedlen(
            parameters.iterations, parameters.memoryKiB, parameters.parallelism, UInt32(salt.count), 32, Argon2_id)
        var encoded = [CChar](repeating: 0, count: length)
        let result = password.withUnsafeBytes { pwd in
            salt.withUnsafeBytes { saltBytes in
                argon2id_hash_encoded(
                    parameters.iterations, parameters.memoryKiB, parameters.parallelism, pwd.baseAddress, pwd.count,
                    saltBytes.baseAddress, saltBytes.count, 32, &encoded, length)
            }
        }
        guard result == ARGON2_OK.rawValue else { return nil }
        return encoded.withUnsafeBufferPointer { buffer in
            String(decoding: UnsafeRawBufferPointer(buffer).prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Whether `password` matches the PHC string `encoded` (argon2id, argon2i or argon2d).
    /// libargon2 compares the hashes in constant time. A malformed string never matches.
    package static func verify(_ password: [UInt8], encoded: String) -> Bool {
        self.verifyResult(password, encoded: encoded) == .match
    }

    package enum VerifyResult: Sendable, Equatable {
        case match
        case mismatch
        /// Not a PHC string libargon2 can read: never a match.
        case malformed
    }

    package static func verifyResult(_ password: [UInt8], encoded: String) -> VerifyResult {
        let type: Argon2_type
        if encoded.hasPrefix("$argon2id$") {
            type = Argon2_id
        } else if encoded.hasPrefix("$argon2i$") {
            type = Argon2_i
        } else if encoded.hasPrefix("$argon2d$") {
            type = Argon2_d
        } else {
            return .malformed
        }
        let code = password.withUnsafeBytes { pwd in argon2_verify(encoded, pwd.baseAddress, pwd.count, type) }
        switch code {
        case ARGON2_OK.rawValue: return .match
        case ARGON2_VERIFY_MISMATCH.rawValue: return .mismatch
        default: return .malformed
        }
    }

    /// A well-formed hash of a random password, verified against when a username is unknown so
    /// that the answer takes as long as for a known one.
    package static let dummyHash: String =
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$2mOMuIdkBbKSFcjvzq3mnAwsbxk6gcXCsM7Im7d7Yz8"
}
