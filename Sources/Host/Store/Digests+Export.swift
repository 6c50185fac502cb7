// Chunk digests live in their own small module so that remote agents, which link the agent
// channel and the chunker but never the store, name chunks with the same type as Host.
@_exported import Digests
