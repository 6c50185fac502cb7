import Foundation
import Glibc
import PluginAPI

/// Reads one tape file record by record from a positioned drive, as a byte stream.
/// A record larger than the buffer (ENOMEM) is read again with a larger buffer after
/// backspacing over it. `finished` turns true at the file's filemark.
final class TapeFileReader {
    let drive: TapeDrive
    private var buffer: [UInt8]
    private var available: Range<Int> = 0..<0
    private(set) var finished = false
    /// Bytes of the file delivered so far.
    private(set) var position: UInt64 = 0

    init(drive: TapeDrive, recordSize: Int = TapeFormat.recordSize) {
        self.drive = drive
        buffer = [UInt8](repeating: 0, count: recordSize)
    }

    /// Reads the next record into the buffer; false at the filemark.
    private func fill() throws -> Bool {
        guard !finished else { return false }
        while true {
            do {
                let count = try buffer.withUnsafeMutableBytes { try drive.read(into: $0) }
                if count == 0 { finished = true; return false }
                available = 0..<count
                return true
            } catch let error as TapeDeviceError where error.isBufferTooSmall && buffer.count < 64 << 20 {
                try drive.backwardSpaceRecords(1)
                buffer = [UInt8](repeating: 0, count: buffer.count * 4)
            }
        }
    }

    /// Copies up to `into.count` bytes; 0 at the end of the file.
    func read(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        if available.isEmpty { guard try fill() else { return 0 } }
        let count = min(target.count, available.count)
        buffer.withUnsafeBytes { raw in
            target.baseAddress!.copyMemory(from: raw.baseAddress! + available.lowerBound, byteCount: count)
        }
        available = (available.lowerBound + count)..<available.upperBound
        position += UInt64(count)
        return count
    }

    /// Reads exactly `count` bytes (or fewer at the end of the file).
    func read(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = try out.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
            if got == 0 { break }
            done += got
        }
        return Array(out[0..<done])
    }

    /// Reads the headers at the start of a tape file up to its first non-extended member:
    /// returns that header, the pax records that applied to it ('g' records prefixed
    /// "global:"), its content when it is one of dpm's own `dpm-tape/` members (else
    /// empty: the data is the host's), and how many bytes of the file that took.
    func firstMember(maxContent: Int = 16 << 20) throws -> (TarHeader, [String: String], [UInt8], UInt64)? {
        var records: [String: String] = [:]
        var global: [String: String] = [:]
        var consumed: UInt64 = 0
        while true {
            let block = try read(TarHeader.blockSize)
            guard block.count == TarHeader.blockSize, let header = TarHeader.parse(block[...]) else { return nil }
            consumed += UInt64(TarHeader.blockSize)
            guard header.size <= 1 << 40 else { return nil }
            let padded = Int(header.size) + TarHeader.padding(header.size)
            if header.isExtended {
                guard padded <= 1 << 20 else { return nil }
                let data = try read(padded)
                consumed += UInt64(data.count)
                for (key, value) in PaxRecords.decode(Array(data.prefix(Int(header.size)))) ?? [] {
                    if header.typeflag == UInt8(ascii: "g") { global[key] = value } else { records[key] = value }
                }
                continue
            }
            for (key, value) in global where records[key] == nil { records["global:" + key] = value }
            let path = records["path"] ?? header.name
            if path.hasPrefix("dpm-tape/") && header.size <= UInt64(maxContent) {
                let data = try read(padded)
                consumed += UInt64(data.count)
                return (header, records, Array(data.prefix(Int(header.size))), consumed)
            }
            return (header, records, [], consumed)
        }
    }
}
