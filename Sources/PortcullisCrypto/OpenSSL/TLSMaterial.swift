internal import CPortcullisOpenSSL

/// Checks of TLS files at configuration load, so that a certificate that is not PEM, or a key
/// that belongs to another certificate, is a configuration error with its place instead of a
/// start-up failure (server) or a 502 on every request (upstream).
package enum TLSMaterial {
    /// Why `pem` is not a usable certificate chain, or `nil` when it is (at least one PEM
    /// certificate, all of them readable).
    package static func certificateProblem(_ pem: [UInt8]) -> String? {
        let count = Self.certificates(pem) { _ in }
        switch count {
        case nil: return "not a PEM certificate"
        case 0?: return "no PEM certificate in it"
        default: return nil
        }
    }

    /// Why `keyPEM` is not the private key of the first certificate in `certificatePEM`, or
    /// `nil` when it is.
    package static func keyProblem(certificate certificatePEM: [UInt8], key keyPEM: [UInt8]) -> String? {
        guard let key = try? EVPKey.privateKey(pem: keyPEM) else { return "not a PEM private key" }
        var matches = false
        _ = Self.certificates(certificatePEM) { certificate in
            if !matches { matches = X509_check_private_key(certificate, key.pointer) == 1 }
        }
        ERR_clear_error()
        return matches ? nil : "the key does not belong to the certificate"
    }

    /// Calls `body` with each certificate of a PEM bundle; the count, or `nil` when a block
    /// fails to parse.
    private static func certificates(_ pem: [UInt8], _ body: (OpaquePointer) -> Void) -> Int? {
        pem.withUnsafeBytes { raw -> Int? in
            guard let bio = pc_bio_from_bytes(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            var count = 0
            while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) {
                body(certificate)
                X509_free(certificate)
                count += 1
            }
            // The loop ends at the end of the data (PEM_R_NO_START_LINE) or at a broken block.
            let error = ERR_peek_last_error()
            ERR_clear_error()
            if count == 0 && error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE { return nil }
            return count
        }
    }
}
