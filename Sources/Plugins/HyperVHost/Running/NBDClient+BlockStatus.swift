import Foundation
import PluginAPI

extension NBDClient {
    /// The statuses of metadata context `context` over `[offset, offset + length)`, in order,
    /// covering the range exactly (the last one is clipped to it).
    ///
    /// A server may describe less than was asked per request; the client asks again from
    /// where the answer stopped. Descriptors of zero length, or a reply that makes no
    /// progress, are refused rather than looped on.
    func blockStatus(context: String, offset: UInt64, length: UInt64) throws -> [Status] {
        guard let contextID = contexts[context] else {
            throw PluginError(.invalid, "\(what): metadata context '\(context)' was not negotiated")
        }
        guard offset <= size, length <= size - offset else {
            throw PluginError(.invalid, "\(what): block status of \(offset)+\(length) passes the end (\(size) bytes)")
        }
        var statuses: [Status] = []
        var position = offset
        let end = offset + length
        while position < end {
            // Ask at most 2 GiB at a time, aligned so that servers with 512-byte sectors agree.
            let ask = UInt32(min(end - position, UInt64(1) << 31))
            let answered = try blockStatusPiece(contextID: contextID, offset: position, length: ask)
            guard let last = answered.last, last.end > position else {
                throw PluginError(.corrupt, "\(what): block status at \(position) made no progress")
            }
            for var status in answered where status.offset < end {
                status.length = min(status.end, end) - status.offset
                if let previous = statuses.last, previous.flags == status.flags, previous.end == status.offset {
                    statuses[statuses.count - 1].length += status.length
                } else {
                    statuses.append(status)
                }
            }
            position = min(last.end, end)
        }
        return statuses
    }

    private func blockStatusPiece(contextID: UInt32, offset: UInt64, length: UInt32) throws -> [Status] {
        let cookie = try sendRequest(NBDProtocol.Command.blockStatus, offset: offset, length: length)
        let deadline = Date().addingTimeInterval(timeout)
        var result: [Status]?
        while true {
            let chunk = try nextGoodChunk(cookie: cookie, deadline: deadline, doing: "block status at \(offset)")
            switch chunk.type {
            case NBDProtocol.ChunkType.blockStatus:
                guard chunk.length >= 4, (chunk.length - 4) % 8 == 0, chunk.length <= 16 << 20 else {
                    throw PluginError(.corrupt, "\(what): a block status chunk of \(chunk.length) bytes")
                }
                var payload = NBDReader(try socket.readExactly(Int(chunk.length), deadline: deadline))
                let id = payload.u32() ?? 0
                var statuses: [Status] = []
                var position = offset
                while payload.remaining >= 8, let extentLength = payload.u32(), let flags = payload.u32() {
                    guard extentLength > 0 else { throw PluginError(.corrupt, "\(what): a block status descriptor of length 0") }
                    guard position <= size, UInt64(extentLength) <= size - position else {
                        throw PluginError(.corrupt, "\(what): block status describes bytes past the end of the export")
                    }
                    statuses.append(Status(offset: position, length: UInt64(extentLength), flags: flags))
                    position += UInt64(extentLength)
                }
                if id == contextID { result = statuses }
            case NBDProtocol.ChunkType.none:
                guard chunk.length == 0 else { throw PluginError(.corrupt, "\(what): an empty chunk with a payload") }
            default:
                throw PluginError(.corrupt, "\(what): an unexpected chunk type \(chunk.type) in a block status reply")
            }
            if chunk.flags & NBDProtocol.replyFlagDone != 0 { break }
        }
        guard let result, !result.isEmpty else {
            throw PluginError(.corrupt, "\(what): the block status reply at \(offset) has no descriptors for the requested context")
        }
        return result
    }
}
