import Foundation
import XCTest

/// A real `qemu-system-x86_64` for tests (TCG, no guest OS). Its disks have node names
/// disk0, disk1, …; by default they are `-drive if=none` block backends named drive0,
/// drive1, … (see `Wiring`). It has two QMP monitors: `qmpSocket` for the code under test,
/// `testSocket` for the test's own `TestMonitor`.
///
/// Stopped by PID (SIGTERM, then SIGKILL) when the test ends; its sockets are removed.
public final class TestQEMU {
    public struct Disk {
        public var path: String
        /// qemu's format name: vhdx, qcow2, vpc, raw.
        public var format: String
        public init(_ path: String, format: String) { self.path = path; self.format = format }
    }

    public enum Wiring {
        /// `-machine none` with a named block backend (drive0, …) per disk.
        case drives
        /// A q35 machine with a virtio-blk device per drive (the guest CPU halts in firmware,
        /// unless `Boot` gives it a kernel).
        case devices
        /// `-machine none` with `-blockdev` nodes only: no backend, no device.
        case nodesOnly
    }

    /// A Linux guest to boot on a `.devices` machine (see TestGuest): kernel, initramfs and
    /// command line, the console into a file, and virtio-serial ports whose host ends are
    /// unix-socket servers (`server=on,wait=off`).
    public struct Boot {
        public var kernel: String
        public var initrd: String
        public var commandLine: String
        public var console: String
        /// (port name in the guest, socket path on the host)
        public var ports: [(name: String, socket: String)]
        public var memoryMiB = 256

        public init(kernel: String, initrd: String, commandLine: String, console: String, ports: [(name: String, socket: String)]) {
            self.kernel = kernel
            self.initrd = initrd
            self.commandLine = commandLine
            self.console = console
            self.ports = ports
        }
    }

    public let directory: String
    public let disks: [Disk]
    public let wiring: Wiring
    public let boot: Boot?
    public var qmpSocket: String { directory + "/qmp.sock" }
    public var testSocket: String { directory + "/qmp-test.sock" }
    /// Every socket QEMU serves, removed when it stops.
    private var sockets: [String] { [qmpSocket, testSocket] + (boot?.ports.map(\.socket) ?? []) }
    public private(set) var pid: pid_t = 0
    public private(set) var monitor: TestMonitor!
    private var process: Process?

    /// Starts QEMU and connects the test monitor.
    public init(_ test: XCTestCase, directory: String, disks: [Disk], wiring: Wiring = .drives, boot: Boot? = nil) throws {
        try TestSupport.require("qemu-system-x86_64")
        self.directory = directory
        self.disks = disks
        self.wiring = boot == nil ? wiring : .devices
        self.boot = boot
        try start()
        // Strong: the test may have dropped its last reference before teardown.
        test.addTeardownBlock { self.stop() }
    }

    deinit { stop() }

    public var arguments: [String] {
        var arguments = ["-accel", "tcg", "-nodefaults", "-display", "none", "-S",
                         "-qmp", "unix:\(qmpSocket),server=on,wait=off", "-qmp", "unix:\(testSocket),server=on,wait=off"]
        arguments += wiring == .devices ? ["-machine", "q35", "-boot", "reboot-timeout=-1", "-m", "\(boot?.memoryMiB ?? 64)"] : ["-machine", "none"]
        if let boot {
            arguments += ["-kernel", boot.kernel, "-initrd", boot.initrd, "-append", boot.commandLine, "-no-reboot",
                          "-serial", "file:\(boot.console)", "-device", "virtio-serial-pci"]
            for (index, port) in boot.ports.enumerated() {
                arguments += ["-chardev", "socket,id=port\(index),path=\(port.socket),server=on,wait=off",
                              "-device", "virtserialport,chardev=port\(index),name=\(port.name)"]
            }
        }
        for (index, disk) in disks.enumerated() {
            if wiring == .nodesOnly {
                arguments += ["-blockdev", "driver=file,node-name=file\(index),filename=\(disk.path)",
                              "-blockdev", "driver=\(disk.format),node-name=disk\(index),file=file\(index)"]
                continue
            }
            arguments += ["-drive", "if=none,id=drive\(index),node-name=disk\(index),file=\(disk.path),format=\(disk.format)"]
            if wiring == .devices { arguments += ["-device", "virtio-blk-pci,drive=drive\(index),id=vd\(index)"] }
        }
        return arguments
    }

    /// Starts (or restarts) the process; the guest is left paused in "prelaunch" (-S).
    public func start() throws {
        for socket in sockets { unlink(socket) }
        let log = directory + "/qemu.log"
        let process = try TestSupport.launch(TestSupport.which("qemu-system-x86_64") ?? "/usr/bin/qemu-system-x86_64", arguments, log: log)
        self.process = process
        pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(10)
        while true {
            if let monitor = try? TestMonitor(path: testSocket) { self.monitor = monitor; break }
            guard process.isRunning, Date() < deadline else {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "QEMU did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")"])
            }
            usleep(10_000)
        }
    }

    /// Stops the process by its PID (SIGTERM: QEMU closes its images cleanly and stores
    /// persistent bitmaps) and removes its sockets.
    public func stop() {
        monitor?.close()
        if let process, process.isRunning {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
        }
        process = nil
        for socket in sockets { unlink(socket) }
    }

    /// Kills the process with SIGKILL, as a host crash would: nothing is flushed or stored.
    public func crash() {
        monitor?.close()
        if let process, process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        process = nil
        for socket in sockets { unlink(socket) }
    }

    public func restart() throws {
        stop()
        try start()
    }

    /// Resumes the guest (`cont`), so that its status is "running".
    public func resume() throws { try monitor.execute("cont") }

    /// Writes `length` bytes of `pattern` at `offset` of disk `index`, as the guest would.
    public func write(disk index: Int, pattern: UInt8, offset: UInt64, length: UInt64) throws {
        // A node without a backend is addressed by node name (which conflicts with a running
        // backup's copy-before-write filter; backends do not).
        let target = wiring == .nodesOnly ? "disk\(index)" : "drive\(index)"
        let output = try monitor.humanMonitor("qemu-io \(target) \"write -P \(pattern) \(offset) \(length)\"")
        guard !output.contains("rror") && !output.contains("failed") else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "qemu-io write on drive\(index): \(output)"])
        }
    }

    /// Names of nodes, exports and jobs whose name starts with `prefix`, plus bitmaps
    /// (node: names) with that prefix: what a clean teardown must leave empty (bitmaps: one
    /// per disk, the current generation).
    public func objects(prefix: String = "dpm-") throws -> (nodes: [String], exports: [String], jobs: [String], bitmaps: [String: [String]]) {
        let nodes = try monitor.execute("query-named-block-nodes", ["flat": true]) as? [[String: Any]] ?? []
        let exports = try monitor.execute("query-block-exports") as? [[String: Any]] ?? []
        let jobs = try monitor.execute("query-jobs") as? [[String: Any]] ?? []
        let blockJobs = try monitor.execute("query-block-jobs") as? [[String: Any]] ?? []
        var bitmaps: [String: [String]] = [:]
        for node in nodes {
            let names = (node["dirty-bitmaps"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.filter { $0.hasPrefix(prefix) }
            if let name = node["node-name"] as? String, !names.isEmpty { bitmaps[name] = names.sorted() }
        }
        return (nodes.compactMap { $0["node-name"] as? String }.filter { $0.hasPrefix(prefix) },
                exports.compactMap { $0["id"] as? String }.filter { $0.hasPrefix(prefix) },
                Set(jobs.compactMap { $0["id"] as? String } + blockJobs.compactMap { $0["device"] as? String }).filter { $0.hasPrefix(prefix) }.sorted(),
                bitmaps)
    }

    /// Exports disk `index`'s live node read-only on an NBD server of the test's own and
    /// runs `body` with its URI (an independent view of the disk for comparisons).
    public func withLiveExport<T>(disk index: Int, _ body: (String) throws -> T) throws -> T {
        let socket = directory + "/test-nbd.sock"
        unlink(socket)
        try monitor.execute("nbd-server-start", ["addr": ["type": "unix", "data": ["path": socket]]])
        defer {
            _ = try? monitor.execute("block-export-del", ["id": "test-live", "mode": "hard"])
            usleep(20_000)
            _ = try? monitor.execute("nbd-server-stop")
            unlink(socket)
        }
        try monitor.execute("block-export-add", ["type": "nbd", "id": "test-live", "node-name": "disk\(index)", "name": "live", "writable": false])
        return try body("nbd+unix:///live?socket=\(socket)")
    }
}
