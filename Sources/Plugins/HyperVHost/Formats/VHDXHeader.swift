import Foundation

/// The VHDX header section: the file type identifier and the two headers (MS-VHDX 2.2).
///
/// The first megabyte of every VHDX file is laid out in 64 KiB pieces:
///
/// | offset | content |
/// |---|---|
/// | 0 | file type identifier: ASCII `vhdxfile` (8 bytes), then Creator, up to 256 UTF-16LE code units (diagnostic only) |
/// | 64 KiB | header 1 |
/// | 128 KiB | header 2 |
/// | 192 KiB | region table 1 (`VHDXRegionTable`) |
/// | 256 KiB | region table 2, a copy |
/// | 320 KiB – 1 MiB | reserved |
///
/// Each header is a 4 KiB structure (little-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | Signature, ASCII `head` |
/// | 4 | 4 | Checksum: CRC-32C over the whole 4 KiB with this field taken as zero |
/// | 8 | 8 | SequenceNumber |
/// | 16 | 16 | FileWriteGuid: changes on the first write to the file after each open |
/// | 32 | 16 | DataWriteGuid: changes on the first write of visible data; differencing children record it as `parent_linkage` |
/// | 48 | 16 | LogGuid: zero when the log is empty; otherwise log entries carrying this GUID are valid |
/// | 64 | 2 | LogVersion, 0 |
/// | 66 | 2 | Version, 1 |
/// | 68 | 4 | LogLength, a multiple of 1 MiB |
/// | 72 | 8 | LogOffset, a multiple of 1 MiB, at least 1 MiB |
/// | 80 | 4016 | reserved |
///
/// A header is valid when its signature and checksum are right; the current header is the only
/// valid one, or the valid one with the greater sequence number. Headers are updated
/// alternately (never through the log), so one always survives a torn write.
struct VHDXHeader: Equatable {
    static let fileIdentifierSignature = "vhdxfile"
    static let offsets: [UInt64] = [64 * 1024, 128 * 1024]
    static let size = 4096

    var sequenceNumber: UInt64
    var fileWriteGuid: MSGUID
    var dataWriteGuid: MSGUID
    var logGuid: MSGUID
    var logVersion: UInt16
    var version: UInt16
    var logLength: UInt32
    var logOffset: UInt64

    /// Why a header copy was rejected, for messages.
    enum Problem: String {
        case badSignature = "bad signature"
        case badChecksum = "bad checksum"
    }

    /// Parses one 4 KiB header copy.
    static func parse(_ bytes: [UInt8]) -> Result<VHDXHeader, ProblemBox> {
        guard bytes.count >= size, bytes.matches("head", at: 0) else { return .failure(ProblemBox(.badSignature)) }
        let sealed = Array(bytes[0..<size])
        guard CRC32C.verify(sealed, fieldOffset: 4) else { return .failure(ProblemBox(.badChecksum)) }
        return .success(VHDXHeader(
            sequenceNumber: sealed.le64(8), fileWriteGuid: MSGUID(sealed, at: 16),
            dataWriteGuid: MSGUID(sealed, at: 32), logGuid: MSGUID(sealed, at: 48),
            logVersion: sealed.le16(64), version: sealed.le16(66),
            logLength: sealed.le32(68), logOffset: sealed.le64(72)))
    }

    /// `Problem` wrapped to satisfy `Result`'s `Error` constraint.
    struct ProblemBox: Error { let problem: Problem; init(_ problem: Problem) { self.problem = problem } }

    /// The 4 KiB on-disk form with a valid checksum.
    func serialized() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VHDXHeader.size)
        bytes.putASCII("head", at: 0)
        bytes.putLE64(sequenceNumber, at: 8)
        bytes.put(fileWriteGuid.bytes, at: 16)
        bytes.put(dataWriteGuid.bytes, at: 32)
        bytes.put(logGuid.bytes, at: 48)
        bytes.putLE16(logVersion, at: 64)
        bytes.putLE16(version, at: 66)
        bytes.putLE32(logLength, at: 68)
        bytes.putLE64(logOffset, at: 72)
        CRC32C.seal(&bytes, fieldOffset: 4)
        return bytes
    }

    /// The 64 KiB file type identifier block: signature and a UTF-16LE creator string.
    static func fileIdentifier(creator: String) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 64 * 1024)
        bytes.putASCII(fileIdentifierSignature, at: 0)
        bytes.putUTF16(creator, at: 8, maxBytes: 512, bigEndian: false)
        return bytes
    }

    /// Checks the file type identifier and returns the current header.
    static func readCurrent(from file: FileReader) throws -> VHDXHeader {
        let path = file.path
        guard file.size >= 1024 * 1024 else {
            throw DiskError.corrupt(path, "file is \(file.size) bytes, shorter than the 1 MiB VHDX header section")
        }
        let identifier = try file.readBytes(at: 0, count: 8)
        guard identifier.matches(fileIdentifierSignature, at: 0) else {
            throw DiskError.corrupt(path, "bad signature: a VHDX file starts with \"vhdxfile\", this one with \"\(identifier.printable(0, 8))\"")
        }
        var valid: [VHDXHeader?] = []
        var problems: [Problem] = []
        for offset in offsets {
            switch parse(try file.readBytes(at: offset, count: size)) {
            case .success(let header): valid.append(header)
            case .failure(let box): valid.append(nil); problems.append(box.problem)
            }
        }
        let current: VHDXHeader
        switch (valid[0], valid[1]) {
        case (nil, nil):
            if problems.allSatisfy({ $0 == .badChecksum }) {
                throw DiskError.corrupt(path, "both headers have bad checksums; the file is damaged")
            }
            throw DiskError.corrupt(path, "no valid header (header 1: \(problems[0].rawValue), header 2: \(problems[1].rawValue)); the file is damaged")
        case (let one?, nil): current = one
        case (nil, let two?): current = two
        case (let one?, let two?):
            if one.sequenceNumber == two.sequenceNumber && one != two {
                throw DiskError.corrupt(path, "both headers have sequence number \(one.sequenceNumber) but differ; the file is damaged")
            }
            current = one.sequenceNumber >= two.sequenceNumber ? one : two
        }
        guard current.version == 1 else {
            throw DiskError.unsupported(path, "VHDX version \(current.version) (dpm reads version 1)")
        }
        return current
    }
}
