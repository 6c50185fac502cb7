import Foundation
import PluginAPI

/// Runs one job row in this process: what `dpm worker JOB` does for the server, so that a
/// provider that traps or hangs takes down only its own worker.
public final class JobRunner {
    /// Exit statuses of a worker: the server reads them to decide on retries.
    public enum ExitStatus: Int32 {
        case succeeded = 0
        case failed = 1
        /// The failure may pass (busy store, transient provider error): retry with back-off.
        case transient = 75
    }

    let service: ProtectionService

    public init(service: ProtectionService) {
        self.service = service
    }

    public func run(jobID: Int64, cancellation: CancellationFlag) -> ExitStatus {
        let catalog: Catalog
        let job: JobRecord
        do {
            catalog = try service.catalog()
            guard let found = try catalog.job(jobID) else {
                Log.error("job \(jobID) does not exist")
                return .failed
            }
            job = found
            try catalog.setJobPid(jobID, getpid())
        } catch {
            Log.error("job \(jobID): \(error)")
            return .failed
        }
        do {
            let (message, result) = try execute(job, catalog: catalog, cancellation: cancellation)
            try catalog.finishJob(jobID, state: "succeeded", message: message, result: result)
            return .succeeded
        } catch {
            let host = error as? HostError
            let cancelled = host?.code == .cancelled || cancellation.isCancelled
            try? catalog.finishJob(jobID, state: cancelled ? "cancelled" : "failed", message: String(describing: error))
            Log.error("job \(jobID) (\(job.kind) \(job.datasourceId ?? "")): \(error)")
            return [.transient, .busy].contains(host?.code) ? .transient : .failed
        }
    }

    /// Does the work of one job; returns its message and result.
    func execute(_ job: JobRecord, catalog: Catalog, cancellation: CancellationFlag) throws -> (String, String?) {
        guard let kind = JobKind(rawValue: job.kind) else {
            throw HostError(.invalid, "job \(job.id) has unknown kind \(job.kind)")
        }
        func encode<T: Encodable>(_ value: T) -> String? { (try? JSONCoding.encode(value)).map { String(decoding: $0, as: UTF8.self) } }
        switch kind {
        case .consistencyCheck, .replica, .expressFull, .sync:
            guard let datasource = job.datasourceId else { throw HostError(.invalid, "job \(job.id) names no data source") }
            if kind == .replica, let groupName = try catalog.groupName(ofDataSource: datasource), let group = try catalog.group(groupName),
               case .offline(let folder) = group.replicaCreation, let source = try catalog.dataSource(datasource) {
                let imported = try ReplicaTransfer(service: service).importReplica(from: folder, into: source)
                let message = "replica imported from \(folder) as recovery point \(imported.recoveryPoint.id)"
                try requireIntact(imported.verification, datasource: datasource, catalog: catalog, message)
                return (message, encode(imported))
            }
            let mode: BackupMode = [.consistencyCheck, .replica].contains(kind) ? .full : (kind == .expressFull ? .expressFull : .incremental)
            var options = BackupEngine.Options(mode: mode)
            options.cancellation = cancellation
            let report = try service.backup(datasource, options: options, job: job.id)
            try requireIntact(report.verification, datasource: datasource, catalog: catalog, "recovery point \(report.recoveryPoint.id)")
            if kind == .consistencyCheck { try catalog.setConsistent(datasource, true) }
            return ("recovery point \(report.recoveryPoint.id) (\(kind.rawValue))", encode(report))
        case .tapeCopy, .onlineCopy:
            guard let datasource = job.datasourceId else { throw HostError(.invalid, "job \(job.id) names no data source") }
            if kind == .onlineCopy {
                let report = try service.syncOnline(datasource, job: job.id)
                return (report.alreadyOnline ? "\(report.copy.rpId) was already online"
                        : "\(report.copy.rpId) online: \(report.upload.chunksUploaded) chunks sent", encode(report))
            }
            let options = ProtectionService.TierCopyOptions(tier: "tape-library")
            let report = try service.copyToTier(datasource, options: options, job: job.id)
            return ("\(report.copy.rpId) copied to \(report.copy.tier) at \(report.copy.location)", encode(report))
        case .prune:
            let result = try service.prune(dryRun: false)
            return ("removed \(result.removed.count) recovery points", encode(result))
        case .gc:
            let result = try service.collectGarbage(grace: nil)
            return ("removed \(result.chunksRemoved) chunks", encode(result))
        case .verify:
            let result = try service.verify(nil, rp: nil, onProgress: nil)
            for datasource in Set(result.damaged.map(\.datasource)) { try catalog.setConsistent(datasource, false) }
            let message = result.damaged.isEmpty ? "no damage in \(result.pointsChecked) recovery points"
                : "damage in \(result.damaged.count) recovery points; consistency checks scheduled"
            return (message, encode(result))
        }
    }

    /// Fails the job when the initial replica's check found damage, and, as after a verify
    /// job that finds damage, marks the data source for a consistency check.
    private func requireIntact(_ check: ReplicaVerification?, datasource: String, catalog: Catalog, _ what: String) throws {
        guard let check, !check.passed else { return }
        try catalog.setConsistent(datasource, false)
        throw HostError(.corrupt, "\(what): \(check.summary)")
    }
}
