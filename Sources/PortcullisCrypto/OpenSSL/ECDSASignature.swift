internal import CPortcullisOpenSSL

/// Converts ECDSA signatures between JOSE's fixed-width `R‖S` and the DER form OpenSSL uses.
package enum ECDSASignature {
    /// `R‖S` (each `width` bytes) to DER; `nil` if the length is wrong.
    package static func der(fromRaw raw: UnsafeRawBufferPointer, width: Int) -> [UInt8]? {
        guard raw.count == width * 2, let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        let bytes = raw.bindMemory(to: UInt8.self)
        guard let r = BN_bin2bn(bytes.baseAddress, Int32(width), nil) else { return nil }
        guard let s = BN_bin2bn(bytes.baseAddress! + width, Int32(width), nil) else {
            BN_free(r)
            return nil
        }
        // ECDSA_SIG_set0 takes ownership of both numbers on success only.
        guard ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        var out: UnsafeMutablePointer<UInt8>?
        let length = i2d_ECDSA_SIG(signature, &out)  // allocates `out` for us
        guard length > 0, let out else { return nil }
        defer { pc_openssl_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// DER to `R‖S`, each left-padded to `width` bytes.
    package static func raw(fromDER der: [UInt8], width: Int) -> [UInt8]? {
        let signature = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let signature else {
            ERR_clear_error()
            return nil
        }
        defer { ECDSA_SIG_free(signature) }
        // get0: the numbers still belong to `signature`.
        guard let r = ECDSA_SIG_get0_r(signature), let s = ECDSA_SIG_get0_s(signature) else { return nil }
        var out = [UInt8](repeating: 0, count: width * 2)
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(r, buffer.baseAddress, Int32(width)) == width
                && BN_bn2binpad(s, buffer.baseAddress! + width, Int32(width)) == width
        }
        return ok ? out : nil
    }
}
