import CZstd
import Foundation

/// zstd compression with a reusable context. The only file in Host that touches libzstd.
/// Not thread-safe: one per thread.
public final class ZstdCodec {
    private let compressContext: OpaquePointer
    private let decompressContext: OpaquePointer
    public let level: Int32

    public init(level: Int32 = 1) throws {
        guard let compress = ZSTD_createCCtx(), let decompress = ZSTD_createDCtx() else {
            throw HostError(.internalError, "zstd could not create a context")
        }
        compressContext = compress
        decompressContext = decompress
        self.level = level
    }

    deinit {
        ZSTD_freeCCtx(compressContext)
        ZSTD_freeDCtx(decompressContext)
    }

    public static func bound(_ size: Int) -> Int { ZSTD_compressBound(size) }

    /// Compresses `source` into `destination`; returns the compressed size, or nil when it
    /// would not fit (the caller then stores the chunk uncompressed).
    public func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let result = ZSTD_compressCCtx(compressContext, destination.baseAddress, destination.count, source.baseAddress, source.count, level)
        return ZSTD_isError(result) != 0 ? nil : result
    }

    /// The decompressed size a zstd frame declares, or nil when it is not a frame that
    /// declares one (dpm writes frames that always do).
    public static func frameContentSize(_ frame: UnsafeRawBufferPointer) -> UInt64? {
        let size = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        // ZSTD_CONTENTSIZE_UNKNOWN and ZSTD_CONTENTSIZE_ERROR are the two largest values.
        return size >= UInt64.max - 1 ? nil : size
    }

    /// Decompresses exactly `destination.count` bytes; throws on damage.
    public func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, what: String) throws {
        let result = ZSTD_decompressDCtx(decompressContext, destination.baseAddress, destination.count, source.baseAddress, source.count)
        if ZSTD_isError(result) != 0 {
            throw HostError(.corrupt, "\(what): zstd data is damaged (\(String(cString: ZSTD_getErrorName(result))))")
        }
        guard result == destination.count else {
            throw HostError(.corrupt, "\(what): decompressed to \(result) bytes, expected \(destination.count)")
        }
    }
}
