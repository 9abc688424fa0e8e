import PortcullisCrypto
import Synchronization

/// Request ids: the client's `X-Request-Id` when it is sane, else 16 random hex digits chosen at
/// start-up followed by a 16-digit counter. Unique per process and cheap: no random-number call
/// (and no syscall) per request. They correlate log lines; nothing relies on them being
/// unguessable.
package enum RequestID {
    private static let prefix = Array(SecureRandom.hex(8).utf8)
    private static let counter = Atomic<UInt64>(0)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// `given` when it is 1–128 characters of `[A-Za-z0-9._:-]`, else a fresh id.
    package static func choose(_ given: String?) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 128, Self.allAllowed(given.utf8) { return given }
        return Self.next()
    }

    private static func allAllowed(_ bytes: String.UTF8View) -> Bool {
        // Over the contiguous bytes a received field always has, without an iterator.
        bytes.withContiguousStorageIfAvailable { $0.allSatisfy(Self.isAllowed) } ?? bytes.allSatisfy(Self.isAllowed)
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
    }

    package static func next() -> String {
        var value = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
        // One allocation: the prefix, then the counter as 16 zero-padded hex digits.
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for (index, byte) in Self.prefix.enumerated() { buffer[index] = byte }
            for index in stride(from: 31, through: 16, by: -1) {
                buffer[index] = Self.hexDigits[Int(value & 0xF)]
                value >>= 4
            }
            return 32
        }
    }
}
