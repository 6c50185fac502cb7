import Foundation
import PluginAPI

/// Builds the `PluginError`s the disk-format code throws.
///
/// Every message starts with `disk <path>:` and then says what is wrong in plain words, so an
/// operator reading a job log knows which file to look at, for example
/// `disk /vm/a.vhdx: both headers have bad checksums; the file is damaged`.
enum DiskError {
    /// The file's content contradicts its format: bad signature, checksum, offset or count.
    static func corrupt(_ path: String, _ message: String) -> PluginError {
        PluginError(.corrupt, "disk \(path): \(message)")
    }

    /// The file is valid but uses a feature dpm does not implement (compression, encryption, …).
    static func unsupported(_ path: String, _ message: String) -> PluginError {
        PluginError(.unsupported, "disk \(path): \(message)")
    }

    /// The caller asked for something impossible (a read past the end, a misaligned write, …).
    static func invalid(_ path: String, _ message: String) -> PluginError {
        PluginError(.invalid, "disk \(path): \(message)")
    }

    /// A file (the disk itself or a parent) does not exist.
    static func notFound(_ path: String, _ message: String) -> PluginError {
        PluginError(.notFound, "disk \(path): \(message)")
    }

    /// A system call failed; `code` is the `errno` value.
    static func io(_ path: String, _ operation: String, errno code: Int32) -> PluginError {
        let reason = String(cString: strerror(code))
        return PluginError(.io, "disk \(path): \(operation) failed: \(reason) (errno \(code))")
    }
}

/// Overflow-checked arithmetic for values that come from files.
///
/// Offsets and counts read from an image are untrusted: a damaged or hostile file can hold any
/// 64-bit value. These helpers return nil instead of trapping, so the caller can throw a
/// `.corrupt` error that names the field.
extension UInt64 {
    /// `self + other`, or nil on overflow.
    @inline(__always) func plus(_ other: UInt64) -> UInt64? {
        let (value, overflow) = addingReportingOverflow(other)
        return overflow ? nil : value
    }

    /// `self * other`, or nil on overflow.
    @inline(__always) func times(_ other: UInt64) -> UInt64? {
        let (value, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? nil : value
    }

    /// `self` rounded up to a multiple of `unit` (a power of two), or nil on overflow.
    @inline(__always) func roundedUp(toPowerOfTwo unit: UInt64) -> UInt64? {
        guard let bumped = plus(unit - 1) else { return nil }
        return bumped & ~(unit - 1)
    }

    /// `ceil(self / divisor)` without overflow; `divisor` must be non-zero.
    @inline(__always) func divideRoundingUp(_ divisor: UInt64) -> UInt64 {
        self / divisor + (self % divisor == 0 ? 0 : 1)
    }

    /// True when `self` is a power of two (zero is not).
    var isPowerOfTwo: Bool { self != 0 && (self & (self - 1)) == 0 }

    /// A byte count for messages: exact bytes plus a rounded binary unit.
    var byteDescription: String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where self >= size {
            if self % size == 0 { return "\(self / size) \(name)" }
            return "\(self) bytes"
        }
        return "\(self) bytes"
    }
}

extension UInt64 {
    /// The value as an `Int`, or nil when it does not fit (only possible for file-supplied values).
    var asInt: Int? { self <= UInt64(Int.max) ? Int(self) : nil }
}

/// Limits that keep a damaged file from making dpm allocate or loop without bound.
enum DiskLimits {
    /// The deepest differencing/backing chain dpm follows.
    static let maxChainDepth = 32
    /// The largest single metadata structure dpm reads into memory (BAT, L1 table, log).
    static let maxMetadataBytes: UInt64 = 1 << 30
    /// The largest virtual disk any supported format can describe (VHDX's 64 TiB, qcow2 more).
    static let maxVirtualSize: UInt64 = 1 << 56
}
