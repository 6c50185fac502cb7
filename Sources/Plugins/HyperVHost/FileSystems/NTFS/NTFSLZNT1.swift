import Foundation
import PluginAPI

/// LZNT1, the compression of NTFS-compressed files (attribute flag 0x0001).
///
/// A compressed attribute is cut into compression units of 2^(compression unit) clusters
/// (16 clusters, 64 KiB with 4 KiB clusters). A unit whose clusters are all sparse reads as
/// zeros; a unit whose clusters are all allocated is stored as is; a unit with allocated
/// clusters followed by sparse ones holds LZNT1 data in the allocated clusters, which
/// decompresses to the unit's full size.
///
/// LZNT1 data is a sequence of chunks, each standing for 4096 bytes of output:
///
/// | bits of the 2-byte little-endian chunk header | meaning |
/// |---|---|
/// | 0–11 | size of the chunk body that follows, minus 1 |
/// | 12–14 | signature, 3 |
/// | 15 | 1: the body is compressed; 0: the body is 4096 stored bytes |
///
/// A header of 0 (or the end of the data) ends the sequence. A compressed body is a series of
/// groups: one flag byte, then 8 items, bit i of the flag byte (lowest first) telling whether
/// item i is a literal byte (0) or a 2-byte little-endian back-reference (1). A back-reference
/// splits its 16 bits into a displacement (high bits) and a length (low bits); the split
/// depends on how many bytes of the current chunk are already decompressed (P): the length
/// field has 12 bits while P ≤ 16 and loses one bit each time P − 1 doubles past 16 (4 bits at
/// the end of a 4096-byte chunk). It copies (length + 3) bytes from (displacement + 1) bytes
/// back, byte by byte, so the source may overlap the destination. A chunk that decompresses to
/// fewer than 4096 bytes is padded with zeros.
enum NTFSLZNT1 {
    static let chunkSize = 4096

    /// Decompresses `input` (a compression unit's stored clusters) into `outputSize` bytes;
    /// `owner` names the unit in messages.
    static func decompress(_ input: [UInt8], outputSize: Int, owner: String) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: outputSize)
        var position = 0, produced = 0
        while position + 2 <= input.count, produced < outputSize {
            let header = Int(input[position]) | Int(input[position + 1]) << 8
            if header == 0 { break }
            let bodySize = (header & 0x0FFF) + 1
            let body = position + 2
            guard bodySize <= input.count - body else {
                throw NTFSError.corrupt("\(owner): LZNT1 chunk at offset \(ntfsHex(position)) (\(bodySize) bytes) runs past the compressed data")
            }
            let chunkEnd = min(produced + chunkSize, outputSize)
            if header & 0x8000 == 0 {
                let count = min(bodySize, chunkEnd - produced)
                output.replaceSubrange(produced..<produced + count, with: input[body..<body + count])
            } else {
                try decompressChunk(input, body..<body + bodySize, into: &output, start: produced, end: chunkEnd,
                                    owner: "\(owner): LZNT1 chunk at offset \(ntfsHex(position))")
            }
            produced = chunkEnd
            position = body + bodySize
        }
        return output
    }

    /// Decompresses one compressed chunk body into `output[start..<end]`.
    private static func decompressChunk(_ input: [UInt8], _ range: Range<Int>, into output: inout [UInt8],
                                        start: Int, end: Int, owner: String) throws {
        var position = range.lowerBound
        var out = start
        while position < range.upperBound {
            let flags = input[position]
            position += 1
            for bit in 0..<8 where position < range.upperBound {
                if flags >> bit & 1 == 0 {
                    guard out < end else { throw NTFSError.corrupt("\(owner) decompresses to more than 4096 bytes") }
                    output[out] = input[position]
                    out += 1
                    position += 1
                    continue
                }
                guard position + 2 <= range.upperBound else {
                    throw NTFSError.corrupt("\(owner): back-reference cut off at the end of the chunk")
                }
                let token = Int(input[position]) | Int(input[position + 1]) << 8
                position += 2
                let written = out - start
                var lengthBits = 12
                var scan = written - 1
                while scan >= 0x10 {
                    scan >>= 1
                    lengthBits -= 1
                }
                let displacement = (token >> lengthBits) + 1
                let length = (token & ((1 << lengthBits) - 1)) + 3
                guard written > 0, displacement <= written else {
                    throw NTFSError.corrupt("\(owner): back-reference \(displacement) bytes back with only \(written) bytes decompressed")
                }
                guard length <= end - out else { throw NTFSError.corrupt("\(owner) decompresses to more than 4096 bytes") }
                for index in out..<out + length { output[index] = output[index - displacement] }
                out += length
            }
        }
    }
}
