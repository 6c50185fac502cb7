import Foundation
import PluginAPI

/// An application hook of a running VM (`dpm vm add --pre-freeze CMD --post-thaw CMD`): a
/// shell command run on the dpm host, typically one that reaches into the guest (`ssh`, a
/// database client) to make an application write its state to disk before the freeze, and
/// to let it go again after the thaw. Not through the guest agent's channel: dpm holds it
/// while the hooks run, and QEMU serves one client at a time, so such a hook would wait
/// until it is killed. It is the
/// counterpart of a VSS writer: without hooks, a freeze gives filesystem consistency; with
/// a successful pre-freeze hook, application consistency.
///
/// The command runs as `/bin/sh -c CMD` with DPM_VM_NAME, DPM_VM_ID and DPM_HOOK (pre-freeze
/// or post-thaw) in its environment. Exit status 0 is success. A hook that outlives its
/// timeout is killed and counts as failed.
struct QuiesceHook {
    let command: String
    let phase: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs the hook; throws `Failure` with the exit status and the end of its output.
    func run(vm: VMRecord, timeout: TimeInterval) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        var environment = ProcessInfo.processInfo.environment
        environment["DPM_VM_NAME"] = vm.name
        environment["DPM_VM_ID"] = vm.id
        environment["DPM_HOOK"] = phase
        process.environment = environment
        let output = NSTemporaryDirectory() + "dpm-hook-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        guard FileManager.default.createFile(atPath: output, contents: nil), let handle = FileHandle(forWritingAtPath: output) else {
            throw Failure(description: "\(phase) hook: cannot create \(output)")
        }
        defer {
            try? handle.close()
            unlink(output)
        }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw Failure(description: "\(phase) hook could not start: \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            usleep(100_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            throw Failure(description: "\(phase) hook `\(command)` did not finish within \(Int(timeout)) s and was killed")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            let tail = text.trimmingCharacters(in: .whitespacesAndNewlines).suffix(300)
            throw Failure(description: "\(phase) hook `\(command)` failed with status \(process.terminationStatus)"
                + (tail.isEmpty ? "" : ": \(tail)"))
        }
    }
}
