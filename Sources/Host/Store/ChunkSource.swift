/// Where a reader gets chunks: the disk store (`ChunkCodec`) or an online tier. A source
/// serves one thread at a time.
public protocol ChunkSource: AnyObject {
    /// Fills `destination` (exactly the chunk's plain length) with the chunk named `digest`,
    /// checked against its digest; throws `corrupt` on damage, naming the chunk.
    func read(_ digest: ChunkDigest, into destination: UnsafeMutableRawBufferPointer) throws
}

extension ChunkCodec: ChunkSource {
    public func read(_ digest: ChunkDigest, into destination: UnsafeMutableRawBufferPointer) throws {
        try read(digest, from: nil, into: destination)
    }
}
