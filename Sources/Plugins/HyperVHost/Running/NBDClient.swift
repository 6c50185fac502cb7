import Foundation
import PluginAPI

/// A read-only NBD client for one export on a unix socket: fixed newstyle handshake,
/// structured replies, metadata contexts, READ and BLOCK_STATUS (see `NBDProtocol`).
///
/// One request is in flight at a time. Every length, offset and cookie the server sends is
/// checked before use: a confused or hostile server yields `PluginError(.corrupt)`, never a
/// trap or a read outside the caller's buffer. Not thread-safe.
final class NBDClient {
    /// One range of a metadata context, as BLOCK_STATUS describes it.
    struct Status: Equatable {
        var offset: UInt64
        var length: UInt64
        var flags: UInt32
        var end: UInt64 { offset + length }
    }

    let socketPath: String
    let export: String
    /// The export's size in bytes.
    private(set) var size: UInt64 = 0
    private(set) var transmissionFlags: UInt16 = 0
    /// The largest READ the server accepts (NBD_INFO_BLOCK_SIZE; 32 MiB when not given).
    private(set) var maxPayload = 32 << 20
    /// Negotiated metadata contexts and their ids.
    private(set) var contexts: [String: UInt32] = [:]
    var timeout: TimeInterval
    let socket: UnixSocket
    private var nextCookie: UInt64 = 1

    var what: String { "NBD export '\(export)' at \(socketPath)" }

    /// Connects, negotiates structured replies and the `metaContexts` (e.g. "base:allocation",
    /// "qemu:dirty-bitmap:NAME"), and enters transmission with NBD_OPT_GO.
    /// - Throws: when the server lacks structured replies or refuses a requested context.
    init(socketPath: String, export: String, metaContexts: [String] = [], timeout: TimeInterval = 60) throws {
        self.socketPath = socketPath
        self.export = export
        self.timeout = timeout
        socket = try UnixSocket(path: socketPath, role: "NBD socket", timeout: min(timeout, 10))
        try handshake(metaContexts: metaContexts)
    }

    deinit { close() }

    /// Sends NBD_CMD_DISC (best effort) and closes the socket.
    func close() {
        guard socket.fd >= 0 else { return }
        var request = NBDWriter()
        request.u32(NBDProtocol.requestMagic); request.u16(0); request.u16(NBDProtocol.Command.disconnect)
        request.u64(0); request.u64(0); request.u32(0)
        try? socket.write(request.bytes, deadline: Date().addingTimeInterval(1))
        socket.close()
    }

    // MARK: Handshake

    private func handshake(metaContexts: [String]) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var greeting = NBDReader(try socket.readExactly(18, deadline: deadline))
        guard greeting.u64() == NBDProtocol.initialMagic, greeting.u64() == NBDProtocol.optionMagic, let flags = greeting.u16() else {
            throw PluginError(.corrupt, "\(what): the server did not greet as a newstyle NBD server")
        }
        guard flags & NBDProtocol.HandshakeFlag.fixedNewstyle != 0 else {
            throw PluginError(.unsupported, "\(what): the server does not speak fixed newstyle NBD")
        }
        var clientFlags: UInt32 = UInt32(NBDProtocol.HandshakeFlag.fixedNewstyle)
        if flags & NBDProtocol.HandshakeFlag.noZeroes != 0 { clientFlags |= UInt32(NBDProtocol.HandshakeFlag.noZeroes) }
        var answer = NBDWriter()
        answer.u32(clientFlags)
        try socket.write(answer.bytes, deadline: deadline)

        try sendOption(NBDProtocol.Option.structuredReply, [], deadline: deadline)
        let structured = try readOptionReply(NBDProtocol.Option.structuredReply, deadline: deadline)
        guard structured.type == NBDProtocol.Reply.ack else {
            throw PluginError(.unsupported, "\(what): the server refused structured replies (\(NBDProtocol.Reply.errorName(structured.type)))")
        }

        if !metaContexts.isEmpty {
            var data = NBDWriter()
            data.lengthPrefixed(export)
            data.u32(UInt32(metaContexts.count))
            for context in metaContexts { data.lengthPrefixed(context) }
            try sendOption(NBDProtocol.Option.setMetaContext, data.bytes, deadline: deadline)
            while true {
                let reply = try readOptionReply(NBDProtocol.Option.setMetaContext, deadline: deadline)
                if reply.type == NBDProtocol.Reply.ack { break }
                guard reply.type == NBDProtocol.Reply.metaContext else {
                    throw PluginError(.unsupported, "\(what): the server refused metadata contexts \(metaContexts): "
                        + "\(NBDProtocol.Reply.errorName(reply.type)) \(String(decoding: reply.data, as: UTF8.self))")
                }
                var reader = NBDReader(reply.data)
                guard let id = reader.u32() else { throw PluginError(.corrupt, "\(what): a metadata context reply is truncated") }
                contexts[String(decoding: reader.rest(), as: UTF8.self)] = id
            }
            for context in metaContexts where contexts[context] == nil {
                throw PluginError(.notFound, "\(what): the server does not offer metadata context '\(context)'")
            }
        }

        var go = NBDWriter()
        go.lengthPrefixed(export)
        go.u16(1)
        go.u16(NBDProtocol.Info.blockSize)
        try sendOption(NBDProtocol.Option.go, go.bytes, deadline: deadline)
        var sawExport = false
        while true {
            let reply = try readOptionReply(NBDProtocol.Option.go, deadline: deadline)
            if reply.type == NBDProtocol.Reply.ack { break }
            guard reply.type == NBDProtocol.Reply.info else {
                throw PluginError(.notFound, "\(what): the server refused the export: \(NBDProtocol.Reply.errorName(reply.type)) "
                    + String(decoding: reply.data, as: UTF8.self))
            }
            var reader = NBDReader(reply.data)
            switch reader.u16() {
            case NBDProtocol.Info.export:
                guard let exportSize = reader.u64(), let flags = reader.u16() else { throw PluginError(.corrupt, "\(what): NBD_INFO_EXPORT is truncated") }
                size = exportSize
                transmissionFlags = flags
                sawExport = true
            case NBDProtocol.Info.blockSize:
                _ = reader.u32(); _ = reader.u32()
                if let maximum = reader.u32(), maximum >= 4096 { maxPayload = Int(min(maximum, 32 << 20)) }
            default:
                break  // other information is optional and ignored
            }
        }
        guard sawExport else { throw PluginError(.corrupt, "\(what): the server never told the export's size") }
    }

    private func sendOption(_ option: UInt32, _ data: [UInt8], deadline: Date) throws {
        var request = NBDWriter()
        request.u64(NBDProtocol.optionMagic)
        request.u32(option)
        request.u32(UInt32(data.count))
        try socket.write(request.bytes + data, deadline: deadline)
    }

    private func readOptionReply(_ option: UInt32, deadline: Date) throws -> (type: UInt32, data: [UInt8]) {
        var header = NBDReader(try socket.readExactly(20, deadline: deadline))
        guard header.u64() == NBDProtocol.optionReplyMagic, header.u32() == option, let type = header.u32(), let length = header.u32() else {
            throw PluginError(.corrupt, "\(what): a malformed option reply during the handshake")
        }
        guard length <= 1 << 20 else { throw PluginError(.corrupt, "\(what): an option reply of \(length) bytes") }
        return (type, try socket.readExactly(Int(length), deadline: deadline))
    }

    // MARK: Transmission

    func sendRequest(_ command: UInt16, flags: UInt16 = 0, offset: UInt64, length: UInt32) throws -> UInt64 {
        let cookie = nextCookie
        nextCookie += 1
        var request = NBDWriter()
        request.u32(NBDProtocol.requestMagic); request.u16(flags); request.u16(command)
        request.u64(cookie); request.u64(offset); request.u32(length)
        try socket.write(request.bytes, deadline: Date().addingTimeInterval(timeout))
        return cookie
    }

    /// Reads the next structured chunk header of `cookie`; a simple reply comes back with
    /// type `none` and flag DONE (servers may answer errors that way).
    /// The next reply chunk for `cookie` that is not an error: a simple reply with an error
    /// code or an error chunk becomes a PluginError naming `doing` (e.g. "a read at 4096").
    func nextGoodChunk(cookie: UInt64, deadline: Date, doing: String) throws -> (flags: UInt16, type: UInt16, length: UInt32, simpleError: UInt32) {
        let chunk = try nextChunk(cookie: cookie, deadline: deadline)
        if chunk.simpleError != 0 {
            throw PluginError(.io, "\(what): the server failed \(doing): \(NBDProtocol.errnoName(chunk.simpleError))")
        }
        if chunk.type & NBDProtocol.ChunkType.errorBit != 0 {
            throw try errorChunk(type: chunk.type, length: chunk.length, deadline: deadline, doing: doing)
        }
        return chunk
    }

    func nextChunk(cookie: UInt64, deadline: Date) throws -> (flags: UInt16, type: UInt16, length: UInt32, simpleError: UInt32) {
        var magic = NBDReader(try socket.readExactly(4, deadline: deadline))
        switch magic.u32() {
        case NBDProtocol.structuredReplyMagic:
            var header = NBDReader(try socket.readExactly(16, deadline: deadline))
            guard let flags = header.u16(), let type = header.u16(), let replyCookie = header.u64(), let length = header.u32() else {
                throw PluginError(.corrupt, "\(what): a truncated reply header")
            }
            guard replyCookie == cookie else { throw PluginError(.corrupt, "\(what): a reply for request \(replyCookie) while \(cookie) was pending") }
            return (flags, type, length, 0)
        case NBDProtocol.simpleReplyMagic:
            var header = NBDReader(try socket.readExactly(12, deadline: deadline))
            guard let error = header.u32(), header.u64() == cookie else { throw PluginError(.corrupt, "\(what): a simple reply for another request") }
            return (NBDProtocol.replyFlagDone, NBDProtocol.ChunkType.none, 0, error)
        default:
            throw PluginError(.corrupt, "\(what): a reply with a bad magic number; the connection is out of step")
        }
    }

    /// Reads the payload of an error chunk and turns it into an error.
    func errorChunk(type: UInt16, length: UInt32, deadline: Date, doing: String) throws -> PluginError {
        guard length >= 6, length <= 1 << 20 else { throw PluginError(.corrupt, "\(what): an error chunk of \(length) bytes") }
        var payload = NBDReader(try socket.readExactly(Int(length), deadline: deadline))
        let code = payload.u32() ?? 0
        let messageLength = Int(payload.u16() ?? 0)
        let message = String(decoding: payload.take(messageLength) ?? [], as: UTF8.self)
        return PluginError(.io, "\(what): the server failed \(doing): \(NBDProtocol.errnoName(code))\(message.isEmpty ? "" : " (\(message))")")
    }

    /// Reads exactly `buffer.count` bytes at `offset`; ranges the server reports as holes
    /// read as zeros. Large reads are split at the server's maximum payload.
    func read(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw PluginError(.invalid, "\(what): a read of \(buffer.count) bytes at \(offset) passes the end (\(size) bytes)")
        }
        var done = 0
        while done < buffer.count {
            let count = min(maxPayload, buffer.count - done)
            try readPiece(offset: offset + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count]))
            done += count
        }
    }

    private func readPiece(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let cookie = try sendRequest(NBDProtocol.Command.read, offset: offset, length: UInt32(buffer.count))
        let deadline = Date().addingTimeInterval(timeout)
        var covered: [Range<Int>] = []
        while true {
            let chunk = try nextGoodChunk(cookie: cookie, deadline: deadline, doing: "a read at \(offset)")
            switch chunk.type {
            case NBDProtocol.ChunkType.offsetData:
                guard chunk.length >= 8 else { throw PluginError(.corrupt, "\(what): a data chunk of \(chunk.length) bytes") }
                var header = NBDReader(try socket.readExactly(8, deadline: deadline))
                let range = try place(header.u64() ?? 0, Int(chunk.length) - 8, request: offset, count: buffer.count)
                try socket.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: buffer[range]), deadline: deadline)
                covered.append(range)
            case NBDProtocol.ChunkType.offsetHole:
                guard chunk.length == 12 else { throw PluginError(.corrupt, "\(what): a hole chunk of \(chunk.length) bytes") }
                var payload = NBDReader(try socket.readExactly(12, deadline: deadline))
                let range = try place(payload.u64() ?? 0, Int(payload.u32() ?? 0), request: offset, count: buffer.count)
                memset(buffer.baseAddress! + range.lowerBound, 0, range.count)
                covered.append(range)
            case NBDProtocol.ChunkType.none:
                guard chunk.length == 0 else { throw PluginError(.corrupt, "\(what): an empty chunk with a payload") }
                if chunk.flags & NBDProtocol.replyFlagDone != 0 && covered.isEmpty {
                    // A simple reply to a read: the data follows directly.
                    try socket.readExactly(into: buffer, deadline: deadline)
                    covered.append(0..<buffer.count)
                }
            default:
                throw PluginError(.corrupt, "\(what): an unexpected chunk type \(chunk.type) in a read reply")
            }
            if chunk.flags & NBDProtocol.replyFlagDone != 0 { break }
        }
        // The chunks must tile the request exactly: no gap, no overlap.
        var position = 0
        for range in covered.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            guard range.lowerBound == position else {
                throw PluginError(.corrupt, "\(what): the reply to a read at \(offset) leaves a gap or overlaps at byte \(position)")
            }
            position = range.upperBound
        }
        guard position == buffer.count else {
            throw PluginError(.corrupt, "\(what): the reply to a read at \(offset) covers \(position) of \(buffer.count) bytes")
        }
    }

    /// Maps a chunk's absolute range into the request's buffer, refusing ranges outside it.
    private func place(_ chunkOffset: UInt64, _ length: Int, request offset: UInt64, count: Int) throws -> Range<Int> {
        guard chunkOffset >= offset, chunkOffset - offset <= UInt64(count), length >= 0,
              UInt64(length) <= UInt64(count) - (chunkOffset - offset) else {
            throw PluginError(.corrupt, "\(what): a reply chunk at \(chunkOffset)+\(length) lies outside the read at \(offset)+\(count)")
        }
        let start = Int(chunkOffset - offset)
        return start..<start + length
    }
}
