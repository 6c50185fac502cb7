import DPMPluginABI
import Foundation
import PluginAPI

/// The host's Swift view of a tier provider's op table.
public final class TierProviderHandle: @unchecked Sendable {
    public let provider: LoadedProvider
    let newContext: () throws -> CallContext
    var ops: dpm_tier_ops { provider.tierOps!.pointee }

    init(provider: LoadedProvider, context: @escaping () throws -> CallContext) {
        self.provider = provider
        self.newContext = context
    }

    public var id: String { provider.info.id }

    func unsupported(_ operation: String) -> HostError {
        HostError(.unsupported, "provider \(id) does not offer \(operation)")
    }

    /// Stores one archive: `produce` writes the archive's bytes through the closure it gets.
    /// The archive is committed only when `produce` returns normally.
    public func store(_ request: ArchiveRequest, produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> ArchiveDescription {
        guard let begin = ops.store_begin, let write = ops.store_write, let finish = ops.store_finish else {
            throw unsupported("store")
        }
        let context = try newContext()
        let json = try provider.encodeRequest(request)
        var writer: UnsafeMutableRawPointer?
        try provider.invoke("store_begin") { err, size in begin(provider.handle, context.handle, json, &writer, err, size) }
        do {
            try produce { bytes in
                try provider.invoke("store_write") { err, size in
                    write(provider.handle, writer, bytes.baseAddress, bytes.count, err, size)
                }
            }
        } catch {
            _ = try? provider.invokeCollecting("store_finish") { buffer, err, size in
                finish(provider.handle, writer, context.handle, 0, buffer, err, size)
            }
            throw error
        }
        let reply = try provider.invokeCollecting("store_finish") { buffer, err, size in
            finish(provider.handle, writer, context.handle, 1, buffer, err, size)
        }
        return try provider.decodeReply(ArchiveDescription.self, reply, "store_finish")
    }

    public func list(_ filter: ArchiveFilter = ArchiveFilter()) throws -> ArchiveList {
        guard let list = ops.list else { throw unsupported("list") }
        let context = try newContext()
        let json = try provider.encodeRequest(filter)
        let reply = try provider.invokeCollecting("list") { buffer, err, size in
            list(provider.handle, context.handle, json, buffer, err, size)
        }
        return try provider.decodeReply(ArchiveList.self, reply, "list")
    }

    /// Reads one archive, handing each piece to `consume`.
    public func read(_ name: String, consume: (UnsafeRawBufferPointer) throws -> Void) throws -> ArchiveDescription {
        guard let begin = ops.read_begin, let read = ops.read, let end = ops.read_end else { throw unsupported("read") }
        let context = try newContext()
        let json = try provider.encodeRequest(ReadArchiveRequest(name: name))
        var reader: UnsafeMutableRawPointer?
        let reply = try provider.invokeCollecting("read_begin") { buffer, err, size in
            begin(provider.handle, context.handle, json, &reader, buffer, err, size)
        }
        defer { _ = end(provider.handle, reader) }
        let archive = try provider.decodeReply(ArchiveDescription.self, reply, "read_begin")
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            var count = 0
            try chunk.withUnsafeMutableBytes { raw in
                try provider.invoke("read") { err, size in read(provider.handle, reader, raw.baseAddress, raw.count, &count, err, size) }
            }
            guard count > 0 else { break }
            guard count <= chunk.count else {
                throw HostError(.corrupt, "\(id): read returned \(count) bytes into a buffer of \(chunk.count)")
            }
            try chunk.withUnsafeBytes { try consume(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return archive
    }

    public func expire(now: Date) throws -> ExpireReply {
        guard let expire = ops.expire else { throw unsupported("expire") }
        let context = try newContext()
        let json = try provider.encodeRequest(ExpireRequest(now: now))
        let reply = try provider.invokeCollecting("expire") { buffer, err, size in
            expire(provider.handle, context.handle, json, buffer, err, size)
        }
        return try provider.decodeReply(ExpireReply.self, reply, "expire")
    }

    public func command(_ verb: String, _ args: JSONValue? = nil) throws -> JSONValue {
        guard let command = ops.command else { throw unsupported("command") }
        let context = try newContext()
        let json = try provider.encodeRequest(CommandRequest(verb: verb, args: args))
        let reply = try provider.invokeCollecting("command") { buffer, err, size in
            command(provider.handle, context.handle, json, buffer, err, size)
        }
        return try provider.decodeReply(JSONValue.self, reply, "command")
    }
}
