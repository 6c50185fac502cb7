import Foundation

/// A recovery point index, `points/DS/RP.dpmidx`, read and checked as the format
/// documentation describes: a 64-byte header, a JSON manifest, a stream table of 48-byte
/// records, an entry area of 40-byte records and a SHA-256 trailer over everything before it.
struct IndexFile {
    enum Flag: UInt8 { case data = 0, zero = 1, excluded = 2 }

    struct Entry {
        var digest: [UInt8]
        var length: UInt32
        var flag: Flag
    }

    struct Stream {
        var name: String
        var size: UInt64
        var entries: [Entry]
    }

    let path: String
    let manifest: [String: Any]
    let streams: [Stream]

    func text(_ key: String) -> String {
        switch manifest[key] {
        case let string as String: return string
        case let number as NSNumber: return number.stringValue
        default: return "?"
        }
    }

    init(path: String) throws {
        self.path = path
        let bytes = try Primitives.readFile(path, what: "recovery point index")
        func damaged(_ problem: String) -> Failure { Failure.damage("recovery point index \(path): \(problem)") }
        func u32(_ at: Int) -> UInt32 { (0..<4).reversed().reduce(0) { $0 << 8 | UInt32(bytes[at + $1]) } }
        func u64(_ at: Int) -> UInt64 { (0..<8).reversed().reduce(0) { $0 << 8 | UInt64(bytes[at + $1]) } }

        guard bytes.count >= 64 + 32 else { throw damaged("\(bytes.count) bytes is too short for an index") }
        guard Array(bytes[0..<8]) == Array("DPMINDX1".utf8) else { throw damaged("not a dpm index (bad magic)") }
        guard u32(8) == 1 else { throw damaged("index format version \(u32(8)) is unknown") }
        let body = bytes.count - 32
        guard Primitives.sha256(bytes[0..<body]) == Array(bytes[body...]) else {
            throw damaged("SHA-256 trailer mismatch; the file is damaged")
        }

        // Layout: every area must lie inside the body, in the documented order, with the
        // entry area ending where the trailer begins.
        let streamCount = UInt64(u32(12)), manifestOffset = u64(16), manifestLength = u64(24)
        let tableOffset = u64(32), entryOffset = u64(40), entryCount = u64(48), limit = UInt64(body)
        guard manifestOffset == 64, manifestLength <= limit - 64, tableOffset >= 64 + manifestLength, tableOffset <= limit,
              streamCount <= (limit - tableOffset) / 48, entryOffset >= tableOffset + streamCount * 48, entryOffset <= limit,
              entryCount <= (limit - entryOffset) / 40, entryOffset + entryCount * 40 == limit else {
            throw damaged("its layout fields (manifest \(manifestOffset)+\(manifestLength), stream table at \(tableOffset), "
                          + "\(streamCount) streams, entries at \(entryOffset), \(entryCount) entries) disagree with its size \(bytes.count)")
        }

        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[64..<Int(64 + manifestLength)])),
              let manifest = object as? [String: Any] else { throw damaged("its manifest is not a JSON object") }
        self.manifest = manifest
        guard let described = manifest["streams"] as? [[String: Any]], described.count == Int(streamCount) else {
            throw damaged("its manifest does not describe the \(streamCount) streams of its stream table")
        }

        var streams: [Stream] = []
        for number in 0..<Int(streamCount) {
            let record = Int(tableOffset) + number * 48
            let size = u64(record), first = u64(record + 8), count = u64(record + 16)
            let chunking = u32(record + 24), chunkSize = UInt64(u32(record + 28))
            guard first <= entryCount, count <= entryCount - first else {
                throw damaged("stream \(number) claims entries \(first)..<\(first &+ count) of \(entryCount)")
            }
            guard chunking <= 1 else { throw damaged("stream \(number) has unknown chunking \(chunking)") }
            guard chunking == 1 || chunkSize > 0 else { throw damaged("stream \(number) has fixed chunks of size 0") }
            var entries: [Entry] = []
            entries.reserveCapacity(Int(count))
            var covered: UInt64 = 0
            for index in 0..<Int(count) {
                let at = Int(entryOffset) + (Int(first) + index) * 40
                let length = u32(at + 32)
                guard let flag = Flag(rawValue: bytes[at + 36]) else {
                    throw damaged("entry \(index) of stream \(number) has unknown flag \(bytes[at + 36])")
                }
                if chunking == 0 && (UInt64(length) > chunkSize || (index < Int(count) - 1 && UInt64(length) != chunkSize)) {
                    throw damaged("entry \(index) of stream \(number) covers \(length) bytes, but the stream has fixed \(chunkSize)-byte chunks")
                }
                covered += UInt64(length)
                entries.append(Entry(digest: Array(bytes[at..<(at + 32)]), length: length, flag: flag))
            }
            guard covered == size, size <= UInt64(Int64.max) else { throw damaged("the entries of stream \(number) cover \(covered) bytes, not its size \(size)") }
            let describedSize = (described[number]["size"] as? NSNumber)?.uint64Value
            guard describedSize == size else {
                throw damaged("stream \(number) is \(size) bytes in the stream table but \(describedSize.map(String.init) ?? "?") in the manifest")
            }
            streams.append(Stream(name: described[number]["name"] as? String ?? "?", size: size, entries: entries))
        }
        self.streams = streams
    }
}
