// The chunk negotiation names chunks with `ChunkDigest`; callers get the type with the channel.
@_exported import Digests
