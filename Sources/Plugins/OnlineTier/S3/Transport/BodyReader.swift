import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A source of request body bytes that the transport pulls from while sending.
/// `read` fills up to `buffer.count` bytes and returns how many; 0 means the end.
protocol BodyReader: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension RequestBody {
    /// A fresh reader from the first byte (each attempt of a retried request gets its own).
    func makeReader() throws -> BodyReader {
        switch self {
        case .empty: return MemoryBodyReader(bytes: [])
        case .bytes(let bytes): return MemoryBodyReader(bytes: bytes)
        case .data(let data): return MemoryBodyReader(data: data)
        case .file(let path, let offset, let length): return try FileRangeReader(path: path, offset: offset, length: length)
        }
    }

    /// Runs `body` over the whole content in pieces (for hashing before sending).
    func forEachPiece(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch self {
        case .empty: return
        case .bytes(let bytes): try bytes.withUnsafeBytes(body)
        case .data(let data): try data.withUnsafeBytes(body)
        case .file:
            let reader = try makeReader()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let count = try reader.read(into: buffer)
                if count == 0 { return }
                try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            }
        }
    }
}

/// Reads a byte array or Data from memory.
final class MemoryBodyReader: BodyReader {
    private enum Storage { case bytes([UInt8]), data(Data) }
    private let storage: Storage
    private var position = 0

    init(bytes: [UInt8]) { storage = .bytes(bytes) }
    init(data: Data) { storage = .data(data) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        func copy(_ source: UnsafeRawBufferPointer) -> Int {
            let count = min(buffer.count, source.count - position)
            guard count > 0, let target = buffer.baseAddress, let base = source.baseAddress else { return 0 }
            target.copyMemory(from: base + position, byteCount: count)
            position += count
            return count
        }
        switch storage {
        case .bytes(let bytes): return bytes.withUnsafeBytes(copy)
        case .data(let data): return data.withUnsafeBytes(copy)
        }
    }
}

/// Reads `length` bytes of a file from `offset` with pread. A file shorter than promised is an
/// error (sending fewer bytes than Content-Length would hang the request).
final class FileRangeReader: BodyReader {
    private let path: String
    private let descriptor: Int32
    private var offset: UInt64
    private var remaining: UInt64

    init(path: String, offset: UInt64, length: UInt64) throws {
        guard length <= UInt64(Int64.max), offset <= UInt64(Int64.max) - length else {
            throw S3Error.local("the range \(offset)+\(length) of \(path) is beyond any file size", code: "InvalidArgument")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw S3Error.local("cannot open \(path) to upload it: \(String(cString: strerror(errno))); check that the file exists and is readable",
                                code: "LocalFileError")
        }
        self.path = path
        self.descriptor = descriptor
        self.offset = offset
        self.remaining = length
    }

    deinit { close(descriptor) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard remaining > 0, let base = buffer.baseAddress else { return 0 }
        let wanted = Int(min(UInt64(buffer.count), remaining))
        var count = 0
        repeat { count = pread(descriptor, base, wanted, off_t(offset)) } while count < 0 && errno == EINTR
        if count < 0 {
            throw S3Error.local("cannot read \(path) at offset \(offset): \(String(cString: strerror(errno)))", code: "LocalFileError")
        }
        if count == 0 {
            throw S3Error.local("\(path) ended at offset \(offset), \(remaining) bytes before the end of the range being uploaded; "
                                + "the file changed during the upload, so upload it again", code: "LocalFileError")
        }
        offset += UInt64(count)
        remaining -= UInt64(count)
        return count
    }
}
