import Foundation

/// A body sent as `Content-Encoding: aws-chunked` with `x-amz-content-sha256:
/// STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the data is signed piece by piece while it is sent,
/// so a file is read once instead of once to hash and once to send.
///
/// Wire format (AWS, "Signature Calculations … Transferring Payload in Multiple Chunks"):
/// each chunk is `hex(size);chunk-signature=SIG\r\n` + data + `\r\n`; every chunk but the last
/// data chunk holds `chunkSize` bytes; a final chunk of size 0 ends the body
/// (`0;chunk-signature=SIG\r\n\r\n`). SIG chains: see `SigV4Signer.chunkSignature`.
final class AWSChunkedReader: BodyReader {
    private let source: BodyReader
    private let signer: SigV4Signer
    private let key: [UInt8]
    private let timestamp: SigV4Signer.Timestamp
    private var previousSignature: String
    private let chunkSize: Int
    private var remaining: UInt64
    private var pending: [UInt8] = []
    /// The data of the chunk being framed, reused from chunk to chunk.
    private var chunk: [UInt8] = []
    private var pendingOffset = 0
    private var finished = false

    /// - Parameters:
    ///   - seed: the request's own signature (made with `streamingPayload` as payload hash).
    ///   - decodedLength: how many bytes `source` yields, as sent in `x-amz-decoded-content-length`.
    init(source: BodyReader, decodedLength: UInt64, chunkSize: Int, signer: SigV4Signer, seed: SigV4Signer.Signature) {
        self.source = source
        self.signer = signer
        self.timestamp = seed.timestamp
        self.key = signer.signingKey(seed.timestamp)
        self.previousSignature = seed.signature
        self.chunkSize = max(8192, chunkSize)
        self.remaining = decodedLength
    }

    /// The encoded length for `decodedLength` bytes in chunks of `chunkSize`: the Content-Length to send.
    static func encodedLength(decodedLength: UInt64, chunkSize: Int) -> UInt64 {
        let size = UInt64(max(8192, chunkSize))
        func framed(_ count: UInt64) -> UInt64 {
            UInt64(String(count, radix: 16).utf8.count) + UInt64(";chunk-signature=".utf8.count) + 64 + 2 + count + 2
        }
        let full = decodedLength / size, rest = decodedLength % size
        return full * framed(size) + (rest > 0 ? framed(rest) : 0) + framed(0)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if pendingOffset == pending.count {
            if finished { return 0 }
            try prepareNextChunk()
        }
        let count = min(buffer.count, pending.count - pendingOffset)
        pending.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress, let target = buffer.baseAddress else { return }
            target.copyMemory(from: base + pendingOffset, byteCount: count)
        }
        pendingOffset += count
        return count
    }

    private func prepareNextChunk() throws {
        let wanted = Int(min(UInt64(chunkSize), remaining))
        if chunk.count < wanted { chunk = [UInt8](repeating: 0, count: wanted) }
        var filled = 0
        while filled < wanted {
            let count = try chunk.withUnsafeMutableBytes { raw in
                try source.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[filled..<wanted]))
            }
            guard count > 0 else {
                throw S3Error.local("the body ended \(remaining - UInt64(filled)) bytes early while it was being sent", code: "LocalFileError")
            }
            filled += count
        }
        remaining -= UInt64(wanted)
        if wanted == 0 { finished = true }
        let hash = chunk.withUnsafeBytes { Digest.hex(Digest.sha256(UnsafeRawBufferPointer(rebasing: $0[0..<wanted]))) }
        let signature = signer.chunkSignature(previous: previousSignature, chunkHash: hash, key: key, timestamp: timestamp)
        previousSignature = signature
        pending.removeAll(keepingCapacity: true)
        pending.append(contentsOf: "\(String(wanted, radix: 16));chunk-signature=\(signature)\r\n".utf8)
        pending.append(contentsOf: chunk[0..<wanted])
        pending.append(contentsOf: [13, 10])
        pendingOffset = 0
    }
}
