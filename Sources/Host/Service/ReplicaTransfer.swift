import Foundation

/// Offline replica creation (behaviour 7): `dpm replica export` writes a data source's latest
/// recovery point, with every chunk it needs, to a folder on removable media; at the
/// protecting server, a group whose replica method is `offline:DIR` imports it as the
/// member's first recovery point, so only later changes cross the network.
///
/// The folder holds `dpm-replica.json` (what was exported) and a `store/` with the same
/// layout as a chunk store (`chunks/XX/DIGEST`, `points/DS/RP.dpmidx`) and its config.json.
public struct ReplicaTransfer {
    public struct Description: Codable, Sendable {
        public var datasource: String
        public var datasourceName: String
        public var provider: String
        public var rp: String
        public var index: String
        public var chunks: Int
        public var bytes: UInt64
    }

    /// An imported replica and the check of its chunks in this store.
    public struct Imported: Codable, Sendable {
        public var recoveryPoint: RecoveryPointRecord
        public var verification: ReplicaVerification
    }

    let service: ProtectionService

    public init(service: ProtectionService) {
        self.service = service
    }

    public func export(_ name: String, rp: String, to folder: String) throws -> Description {
        let source = try service.knownDataSource(name)
        let point = try service.recoveryPoint(source, rp)
        let store = try service.store(create: false)
        let index = try RecoveryPointIndex.load(store.directory + "/" + point.indexPath)
        let target = folder + "/store"
        try FileSystem.makeDirectory(target + "/chunks")
        try FileSystem.makeDirectory((target + "/" + point.indexPath as NSString).deletingLastPathComponent)
        var bytes: UInt64 = 0
        for digest in index.dataDigests {
            let from = store.chunkPath(digest)
            let to = target + "/chunks/" + digest.hex.prefix(2) + "/" + digest.hex
            try FileSystem.makeDirectory((to as NSString).deletingLastPathComponent)
            if FileSystem.exists(to) { continue }
            let data = try FileSystem.readFile(from)
            try FileSystem.writeAtomically(data, to: to)
            bytes += UInt64(data.count)
        }
        try FileSystem.writeAtomically(try FileSystem.readFile(store.directory + "/config.json"), to: target + "/config.json")
        try FileSystem.writeAtomically(try FileSystem.readFile(store.directory + "/" + point.indexPath), to: target + "/" + point.indexPath)
        let description = Description(datasource: source.id, datasourceName: source.name, provider: source.provider, rp: point.id,
                                      index: point.indexPath, chunks: index.dataDigests.count, bytes: bytes)
        try FileSystem.writeAtomically(try JSONEncoder().encode(description), to: folder + "/dpm-replica.json")
        return description
    }

    /// Imports an exported replica as the first recovery point of `datasource`. Every chunk is
    /// checked against its digest on the way in, and the point, once durable, as a backup's
    /// initial replica is (ReplicaVerification). Refuses a data source that already has points.
    public func importReplica(from folder: String, into datasource: DataSourceRecord) throws -> Imported {
        let catalog = try service.catalog()
        guard try catalog.recoveryPoints(datasource: datasource.id).isEmpty else {
            throw HostError(.invalid, "\(datasource.name) already has recovery points; an offline replica seeds only a new member")
        }
        let description: Description
        do {
            description = try JSONDecoder().decode(Description.self, from: try FileSystem.readFile(folder + "/dpm-replica.json"))
        } catch {
            throw HostError(.invalid, "\(folder) holds no replica written by `dpm replica export` (dpm-replica.json is missing or damaged)", cause: error)
        }
        let sourceStore = try ChunkStore.open(directory: folder + "/store", keyFile: service.settings["store.key_file"], create: false)
        let store = try service.store()
        guard sourceStore.configuration.encrypted == store.configuration.encrypted, sourceStore.keys?.check == store.keys?.check else {
            throw HostError(.invalid, "the replica in \(folder) was written with other encryption keys than this store's")
        }
        var index = try RecoveryPointIndex.load(sourceStore.directory + "/" + description.index)
        let locks = try BackupLocks.acquire(dataDirectory: service.dataDirectory, datasource: datasource)
        defer { withExtendedLifetime(locks) {} }
        let reader = try sourceStore.makeCodec()
        let writer = try store.makeCodec()
        let batch = ChunkCommitBatch(store: store)
        var buffer = [UInt8](repeating: 0, count: max(store.chunkSize, sourceStore.chunkSize))
        var lengths: [ChunkDigest: Int] = [:]
        for stream in index.streams { for entry in stream.entries where entry.flag == .data { lengths[entry.digest] = Int(entry.length) } }
        for (digest, length) in lengths where batch.claim(digest) {
            try buffer.withUnsafeMutableBytes { raw in
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<length])
                try reader.read(digest, into: slice)
                let written = try writer.writeTemporary(UnsafeRawBufferPointer(slice), digest: digest, checksum: true)
                try batch.add(temporary: written.path, digest: digest, blob: written.blob)
            }
        }
        try batch.publish()
        let rpID = RecoveryPointID.make(index.manifest.time)
        index.manifest.storeId = store.configuration.id
        index.manifest.datasource = datasource.id
        index.manifest.datasourceName = datasource.name
        index.manifest.rp = rpID
        index.manifest.token = nil
        let relative = "points/\(RecoveryPointID.directoryName(forDataSource: datasource.id))/\(rpID).dpmidx"
        try index.write(to: store.directory + "/" + relative)
        let record = RecoveryPointRecord(
            id: rpID, datasourceId: datasource.id, time: index.manifest.time, kind: .full, consistency: index.manifest.consistency,
            reason: index.manifest.reason + " (imported offline from \(folder))", pauseMs: index.manifest.pauseMs,
            logicalBytes: index.streams.reduce(0) { $0 + $1.size }, bytesRead: 0, bytesNew: UInt64(lengths.values.reduce(0, +)),
            bytesStored: 0, durationMs: 0, token: nil, changeSource: .full, indexPath: relative, status: RecoveryPointStatus.unverified, damage: nil)
        try catalog.insert(record)
        let check = try ReplicaVerification.run(point: record, written: batch.written, store: store, catalog: catalog)
        return Imported(recoveryPoint: try catalog.recoveryPoint(id: rpID) ?? record, verification: check)
    }
}
