import Foundation
import PluginAPI

extension RecoveryPointIndex {
    /// Serialises the index in the format documented on `RecoveryPointIndex`.
    public func encode() throws -> [UInt8] {
        let manifestBytes = [UInt8](try JSONCoding.encode(manifest))
        let tableOffset = RecoveryPointIndex.headerSize + manifestBytes.count
        let entryOffset = tableOffset + streams.count * RecoveryPointIndex.streamRecordSize
        let totalEntries = streams.reduce(0) { $0 + $1.entries.count }
        var bytes = [UInt8]()
        bytes.reserveCapacity(entryOffset + totalEntries * RecoveryPointIndex.entrySize + 32)
        bytes += RecoveryPointIndex.magic
        LittleEndian.append(UInt32(1), to: &bytes)
        LittleEndian.append(UInt32(streams.count), to: &bytes)
        LittleEndian.append(UInt64(RecoveryPointIndex.headerSize), to: &bytes)
        LittleEndian.append(UInt64(manifestBytes.count), to: &bytes)
        LittleEndian.append(UInt64(tableOffset), to: &bytes)
        LittleEndian.append(UInt64(entryOffset), to: &bytes)
        LittleEndian.append(UInt64(totalEntries), to: &bytes)
        LittleEndian.append(UInt64(0), to: &bytes)
        bytes += manifestBytes
        var first = 0
        for stream in streams {
            LittleEndian.append(stream.size, to: &bytes)
            LittleEndian.append(UInt64(first), to: &bytes)
            LittleEndian.append(UInt64(stream.entries.count), to: &bytes)
            LittleEndian.append(stream.chunking.rawValue, to: &bytes)
            LittleEndian.append(UInt32(stream.chunking == .fixed ? stream.chunkSize : 0), to: &bytes)
            bytes += [UInt8](repeating: 0, count: 16)
            first += stream.entries.count
        }
        for stream in streams {
            for entry in stream.entries {
                withUnsafeBytes(of: entry.digest.bytes) { bytes.append(contentsOf: $0) }
                LittleEndian.append(entry.length, to: &bytes)
                bytes += [entry.flag.rawValue, 0, 0, 0]
            }
        }
        bytes += Crypto.sha256(bytes).raw
        return bytes
    }

    /// Parses and checks an index; `what` names it in errors. Every count and offset is
    /// validated against the file's size before it is used.
    public static func decode(_ bytes: [UInt8], what: String) throws -> RecoveryPointIndex {
        func corrupt(_ problem: String) -> HostError { HostError(.corrupt, "recovery point index \(what): \(problem)") }
        guard bytes.count >= headerSize + 32 else { throw corrupt("\(bytes.count) bytes is too short") }
        guard Array(bytes[0..<8]) == magic else { throw corrupt("not a dpm index (bad magic)") }
        guard LittleEndian.uint32(bytes, at: 8) == 1 else { throw corrupt("format version \(LittleEndian.uint32(bytes, at: 8)) is unknown") }
        let body = bytes.count - 32
        let checksum = bytes[body...].withUnsafeBytes { ChunkDigest($0) }
        guard bytes.withUnsafeBytes({ Crypto.sha256(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }) == checksum else {
            throw corrupt("checksum mismatch; the file is damaged")
        }
        let streamCount = Int(LittleEndian.uint32(bytes, at: 12))
        let manifestOffset = LittleEndian.uint64(bytes, at: 16)
        let manifestLength = LittleEndian.uint64(bytes, at: 24)
        let tableOffset = LittleEndian.uint64(bytes, at: 32)
        let entryOffset = LittleEndian.uint64(bytes, at: 40)
        let totalEntries = LittleEndian.uint64(bytes, at: 48)
        guard manifestOffset == UInt64(headerSize), manifestLength <= UInt64(body), manifestOffset + manifestLength == tableOffset,
              streamCount <= 4096, tableOffset + UInt64(streamCount * streamRecordSize) == entryOffset,
              totalEntries <= UInt64(body) / UInt64(entrySize), entryOffset + totalEntries * UInt64(entrySize) == UInt64(body) else {
            throw corrupt("its layout fields disagree with its size")
        }
        let manifest: Manifest
        do {
            manifest = try JSONCoding.decode(Manifest.self, from: Data(bytes[Int(manifestOffset)..<Int(tableOffset)]))
        } catch {
            throw corrupt("its manifest is not valid (\(error))")
        }
        guard manifest.streams.count == streamCount else { throw corrupt("manifest lists \(manifest.streams.count) streams, table \(streamCount)") }
        var streams: [Stream] = []
        var expectedFirst: UInt64 = 0
        for index in 0..<streamCount {
            let record = Int(tableOffset) + index * streamRecordSize
            let size = LittleEndian.uint64(bytes, at: record)
            let first = LittleEndian.uint64(bytes, at: record + 8)
            let count = LittleEndian.uint64(bytes, at: record + 16)
            guard let chunking = Chunking(rawValue: LittleEndian.uint32(bytes, at: record + 24)) else { throw corrupt("stream \(index) has unknown chunking") }
            let chunkSize = Int(LittleEndian.uint32(bytes, at: record + 28))
            guard first == expectedFirst, count <= totalEntries - first else { throw corrupt("stream \(index) has entries out of place") }
            expectedFirst += count
            var entries: [Entry] = []
            entries.reserveCapacity(Int(count))
            var covered: UInt64 = 0
            for number in 0..<Int(count) {
                let at = Int(entryOffset) + (Int(first) + number) * entrySize
                let digest = bytes.withUnsafeBytes { ChunkDigest($0, at: at) }
                let length = LittleEndian.uint32(bytes, at: at + 32)
                guard let flag = EntryFlag(rawValue: bytes[at + 36]) else { throw corrupt("entry \(number) of stream \(index) has unknown flag") }
                if chunking == .fixed, number < Int(count) - 1, Int(length) != chunkSize {
                    throw corrupt("entry \(number) of fixed stream \(index) is \(length) bytes, not \(chunkSize)")
                }
                covered += UInt64(length)
                entries.append(Entry(digest: digest, length: length, flag: flag))
            }
            guard covered == size else { throw corrupt("stream \(index) entries cover \(covered) bytes of \(size)") }
            if chunking == .fixed { guard chunkSize > 0 else { throw corrupt("stream \(index) has chunk size 0") } }
            streams.append(Stream(size: size, chunking: chunking, chunkSize: chunkSize, entries: entries))
        }
        guard expectedFirst == totalEntries else { throw corrupt("the streams do not account for every entry") }
        return RecoveryPointIndex(manifest: manifest, streams: streams)
    }

    /// Reads and checks an index file.
    public static func load(_ path: String) throws -> RecoveryPointIndex {
        let data: Data
        do {
            data = try FileSystem.readFile(path)
        } catch let error as HostError where error.code == .notFound {
            throw HostError(.corrupt, "recovery point index \(path) is missing")
        }
        return try decode([UInt8](data), what: path)
    }

    /// Writes the index durably: temporary file, fsync, rename, directory fsync.
    public func write(to path: String) throws {
        try FileSystem.makeDirectory((path as NSString).deletingLastPathComponent)
        try FileSystem.writeAtomically(Data(try encode()), to: path)
    }
}
