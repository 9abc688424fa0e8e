internal import CPortcullisArgon2
internal import CPortcullisOpenSSL

/// Versions of the crypto libraries linked into this binary.
package enum CryptoLibraryVersions {
    /// OpenSSL's own version text, read at run time (`OpenSSL 3.0.x …`).
    package static var openSSL: String {
        guard let text = OpenSSL_version(numericCast(OPENSSL_VERSION)) else { return "unknown" }
        return String(cString: text)
    }

    /// libargon2 has no run-time version call; this is the algorithm version it implements
    /// (0x13 = Argon2 v1.3) as compiled against its header.
    package static var argon2Algorithm: String {
        let value = ARGON2_VERSION_NUMBER.rawValue
        return "argon2 v\(value >> 4).\(value & 0xf)"
    }
}
