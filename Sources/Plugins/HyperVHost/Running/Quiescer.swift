import Foundation
import PluginAPI

/// Takes the point in time of a running VM online or offline (behaviour 2), and says how
/// consistent it is and why.
///
/// Online, when every condition dpm can check holds: the VM runs; its guest agent (the
/// backup integration) is configured; QEMU shows the agent's channel free and the guest's
/// port open (`AgentChannel`); the agent answers and has freeze and thaw enabled; the
/// guest's filesystems are not already frozen by someone else; every filesystem the agent
/// lists is one that can be frozen. Then: pre-freeze hook, `guest-fsfreeze-freeze`, which
/// must freeze something and leave `guest-fsfreeze-status` saying "frozen", the point,
/// `guest-fsfreeze-thaw`, post-thaw hook. The hooks run outside the freeze (a hook that
/// waits for a frozen filesystem would deadlock) and must not use the agent's channel,
/// which dpm holds throughout. Application-consistent with a successful pre-freeze hook, else
/// filesystem-consistent. The other conditions of behaviour 2 have no Linux counterpart
/// (shadow storage) or cannot be seen from the host (dynamic disks).
///
/// Offline otherwise: QMP `stop`, the point, `cont`, measuring the pause; crash-consistent.
/// A VM that is not running at all is captured as it is, without pausing.
///
/// A freeze that fails or hangs falls back to offline, after thawing. The thaw (and the
/// `cont`) is guaranteed by a `ResumeWatchdog` even if this process dies.
final class Quiescer {
    struct Timeouts {
        var agent: TimeInterval = 3
        var freeze: TimeInterval = 10
        var thaw: TimeInterval = 10
        var hook: TimeInterval = 60
        /// The point-in-time transaction.
        var point: TimeInterval = 10

        /// Reads `freeze_timeout_ms`, `thaw_timeout_ms`, `agent_timeout_ms` and
        /// `hook_timeout_ms` from the provider's configuration (`dpm config set hyperv-host.KEY`).
        init(config: (String) -> String?) {
            // Between 50 ms and an hour; anything else (or not a number) keeps the default.
            func seconds(_ key: String) -> TimeInterval? {
                guard let value = config(key).flatMap(Double.init), value.isFinite, value >= 50, value <= 3_600_000 else { return nil }
                return value / 1000
            }
            agent = seconds("agent_timeout_ms") ?? agent
            freeze = seconds("freeze_timeout_ms") ?? freeze
            thaw = seconds("thaw_timeout_ms") ?? thaw
            hook = seconds("hook_timeout_ms") ?? hook
        }
    }

    struct Outcome {
        var consistency: Consistency
        var reason: String
        var pauseMs: Int
        var frozenMs: Int?
        var online: Bool
        var notes: [String]
    }

    /// Filesystems whose freeze gives a consistent image (compared lower-case).
    static let freezableFilesystems: Set<String> = [
        "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs", "vfat", "fat", "fat16", "fat32", "exfat", "ntfs", "refs",
    ]

    let vm: VMRecord
    let qmp: QMPClient
    let timeouts: Timeouts
    private var notes: [String] = []

    init(vm: VMRecord, qmp: QMPClient, timeouts: Timeouts) {
        self.vm = vm
        self.qmp = qmp
        self.timeouts = timeouts
    }

    /// Runs `point` (the QMP transaction) inside a freeze or a pause.
    func takePoint(_ point: () throws -> Void) throws -> Outcome {
        let status = try qmp.status()
        guard status.running else {
            try point()
            return Outcome(consistency: .crash, reason: "VM \(vm.name) is not running (QEMU status '\(status.status)'): its disks were "
                + "captured as they are, crash-consistent, without pausing it", pauseMs: 0, frozenMs: nil, online: false, notes: notes)
        }
        let why: String
        switch try online(point) {
        case .done(let outcome): return outcome
        case .offline(let reason): why = reason
        }
        return try offline(point, because: why)
    }

    private enum Attempt { case done(Outcome), offline(String) }

    private func online(_ point: () throws -> Void) throws -> Attempt {
        guard let path = vm.guestAgent else {
            return .offline("no guest agent is configured for the VM (register it with --guest-agent SOCKET for online backups)")
        }
        if let obstacle = AgentChannel.find(qmp: qmp, socket: path)?.obstacle(socket: path) {
            return .offline(obstacle)
        }
        var agent: GuestAgentClient
        let info: GuestAgentClient.Info
        do {
            agent = try GuestAgentClient(path: path, timeout: timeouts.agent)
            info = try agent.info(timeout: timeouts.agent)
        } catch {
            return .offline("the guest agent at \(path) does not answer (\(error)): the guest's backup integration is missing or disabled")
        }
        // The connection open at the time (the thaw below may replace it).
        defer { agent.close() }
        if let commands = info.commands, let off = ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw"].first(where: { commands[$0] != true }) {
            let how = commands[off] == nil ? "does not offer \(off)" : "has \(off) disabled (qemu-ga --block-rpcs)"
            return .offline("the guest agent at \(path) (qemu-ga \(info.version)) \(how): the guest's backup integration is disabled")
        }
        do {
            let state = try agent.freezeStatus(timeout: timeouts.agent)
            guard state == "thawed" else {
                return .offline("the guest's filesystems are '\(state)' already (frozen by another tool); dpm neither freezes nor thaws them")
            }
            if let filesystems = try agent.filesystems(timeout: timeouts.agent),
               let odd = filesystems.first(where: { !Quiescer.freezableFilesystems.contains($0.type.lowercased()) }) {
                return .offline("guest volume \(odd.mountpoint) is \(odd.type), which cannot be frozen consistently")
            }
        } catch {
            return .offline("the guest agent at \(path) cannot report its filesystems (\(error))")
        }

        var application = false
        var hookProblem: String?
        if let command = vm.preFreeze {
            do {
                try QuiesceHook(command: command, phase: "pre-freeze").run(vm: vm, timeout: timeouts.hook)
                application = true
            } catch {
                hookProblem = "\(error)"
                notes.append("VM \(vm.name): \(error); the point is at most filesystem-consistent")
            }
        }
        let watchdog = try ResumeWatchdog(undo: .thaw(agentSocket: path), deadline: timeouts.freeze + timeouts.point + 5)
        let frozenAt = Date()
        let count: Int
        do {
            count = try agent.freeze(timeout: timeouts.freeze)
            // The agent's own word that the guest is frozen now, asked before the point: a
            // freeze that froze nothing, or left the agent thawed, gives no consistency.
            let state = try agent.freezeStatus(timeout: timeouts.agent)
            guard state == "frozen", count > 0 else {
                throw PluginError(.unsupported, "it froze \(count) filesystem(s) and then reported '\(state)'")
            }
        } catch {
            // The agent may have frozen some filesystems before failing or hanging.
            settle(watchdog, thawed: thaw(&agent, path: path))
            postThaw()
            return .offline("the guest agent at \(path) could not freeze the guest's filesystems (\(error))")
        }
        TestPoint.hit("running.frozen")
        var pointError: Error?
        do { try point() } catch { pointError = error }
        let late = watchdog.mayHaveFired
        let thawed = thaw(&agent, path: path)
        let frozenMs = Int(Date().timeIntervalSince(frozenAt) * 1000)
        settle(watchdog, thawed: thawed)
        postThaw()
        if let pointError { throw pointError }
        if late {
            return .done(Outcome(consistency: .crash, reason: "the point was taken after the freeze deadline (\(Int(watchdog.deadline)) s), when "
                + "the watchdog may already have thawed the guest: crash-consistent", pauseMs: 0, frozenMs: frozenMs, online: true, notes: notes))
        }
        let how = "online: the guest agent froze \(count) filesystem(s) for \(frozenMs) ms (guest-fsfreeze-status said 'frozen' before the point)"
        if application {
            return .done(Outcome(consistency: .application, reason: how + " after the pre-freeze hook ran", pauseMs: 0,
                                 frozenMs: frozenMs, online: true, notes: notes))
        }
        let missing = hookProblem.map { "; not application-consistent: \($0)" }
            ?? "; no application hook is configured (--pre-freeze CMD)"
        return .done(Outcome(consistency: .filesystem, reason: how + missing, pauseMs: 0, frozenMs: frozenMs, online: true, notes: notes))
    }

    private func offline(_ point: () throws -> Void, because why: String) throws -> Outcome {
        let watchdog = try ResumeWatchdog(undo: .resume(qmpSocket: qmp.path), deadline: timeouts.point + 5)
        let started = Date()
        do {
            try qmp.run("stop", doing: "pausing VM \(vm.name)")
        } catch {
            watchdog.fire()
            throw error
        }
        TestPoint.hit("running.paused")
        var pointError: Error?
        do { try point() } catch { pointError = error }
        do {
            try qmp.run("cont", doing: "resuming VM \(vm.name)")
        } catch {
            // The watchdog resumes the VM once this process lets go of the QMP socket.
            watchdog.fire()
            throw error
        }
        let pauseMs = Int(Date().timeIntervalSince(started) * 1000)
        watchdog.disarm()
        if let pointError { throw pointError }
        return Outcome(consistency: .crash, reason: "offline: \(why); the VM was paused for \(pauseMs) ms while the point was taken",
                       pauseMs: pauseMs, frozenMs: nil, online: false, notes: notes)
    }

    /// Thaws on `agent` while it is in step with the agent (its last command was answered),
    /// else over a fresh connection, which replaces it. The old connection is closed first:
    /// QEMU serves one client at a time, so a second one would get no answer while the first
    /// is open. A hung freeze blocks the agent itself, which is why the watchdog keeps trying
    /// after this gives up.
    private func thaw(_ agent: inout GuestAgentClient, path: String) -> Bool {
        if agent.isSynchronised, (try? agent.thaw(timeout: timeouts.thaw)) != nil { return true }
        agent.close()
        do {
            agent = try GuestAgentClient(path: path, timeout: timeouts.agent)
            try agent.thaw(timeout: timeouts.thaw)
            return true
        } catch {
            return false
        }
    }

    private func settle(_ watchdog: ResumeWatchdog, thawed: Bool) {
        if thawed {
            watchdog.disarm()
        } else {
            watchdog.fire()
            notes.append("VM \(vm.name): the guest agent did not confirm the thaw; dpm's watchdog keeps sending it for 30 s")
        }
    }

    private func postThaw() {
        guard let command = vm.postThaw else { return }
        do {
            try QuiesceHook(command: command, phase: "post-thaw").run(vm: vm, timeout: timeouts.hook)
        } catch {
            notes.append("VM \(vm.name): \(error)")
        }
    }
}
