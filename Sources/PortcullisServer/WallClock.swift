#if canImport(Glibc)
import Glibc
#endif

/// The wall-clock time that token lifetimes are checked against.
package enum WallClock {
    /// Seconds since 1970, with sub-second precision.
    package static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1_000_000_000
    }
}
