import Foundation
import XCTest

/// The real Linux guest of TESTING.md ("A real Linux guest"): Debian's cloud kernel,
/// qemu-guest-agent and busybox in an initramfs that `scripts/build-test-guest.sh` builds
/// from Debian packages (cached in `.build-guest/`, or `$DPM_TEST_GUEST_DIR`). It boots under
/// TCG on a `TestQEMU` (stopped by PID at teardown like every test QEMU) with:
/// - its disk, a raw ext4 image that the guest mounts on /mnt, as QEMU node disk0;
/// - the real qemu-ga on the port org.qemu.guest_agent.0, host end `agentSocket`;
/// - the test channel org.dpm.test.0, host end `channelSocket`, which answers the commands
///   documented in the script (records, state, watch, report) without going through the
///   agent, so a test can observe the guest while dpm holds the agent's channel.
///
/// Only ever freeze this guest, never a qemu-ga of the machine itself.
public final class TestGuest {
    public struct Options {
        /// Append a record to /mnt/records every this many milliseconds; nil: no writer.
        public var writerIntervalMs: Int?
        /// Whether qemu-ga runs at all.
        public var agent = true
        /// Commands qemu-ga is started with disabled (`--block-rpcs`).
        public var blockedCommands: [String] = []

        public init(writerIntervalMs: Int? = nil, agent: Bool = true, blockedCommands: [String] = []) {
            self.writerIntervalMs = writerIntervalMs
            self.agent = agent
            self.blockedCommands = blockedCommands
        }
    }

    /// The size of one record of the guest's writer: "R", 7 digits, 991 copies of the
    /// number's last digit, "\n".
    public static let recordSize = 1000

    public let directory: String
    public let disk: String
    public let qemu: TestQEMU
    public var agentSocket: String { directory + "/qga.sock" }
    public var channelSocket: String { directory + "/channel.sock" }
    public var console: String { directory + "/console.log" }
    /// A shell command that sends one channel command and prints the reply (for hooks):
    /// `channelCommand + " watch"`.
    public var channelCommand: String { TestGuest.channelCommand(directory: directory) }

    /// `channelCommand` of the guest that will live in `directory`.
    public static func channelCommand(directory: String) -> String { "python3 \(directory)/channel.py \(directory)/channel.sock" }

    /// Builds the guest if needed, creates its disk and boots it until the ready line.
    public init(_ test: XCTestCase, directory: String, options: Options = Options(), diskMiB: Int = 64) throws {
        for tool in ["qemu-system-x86_64", "mkfs.ext4", "python3"] { try TestSupport.require(tool) }
        let image = try TestGuest.image()
        self.directory = directory
        disk = directory + "/guest.raw"
        guard FileManager.default.createFile(atPath: disk, contents: nil), truncate(disk, off_t(diskMiB) << 20) == 0 else {
            throw TestLineSocket.Failure(description: "cannot create the guest disk \(disk)")
        }
        let made = try runProcess(["mkfs.ext4", "-q", "-F", disk])
        XCTAssertEqual(made.status, 0, made.stderr)
        try TestGuest.channelScript.write(toFile: directory + "/channel.py", atomically: true, encoding: .utf8)
        var commandLine = "console=ttyS0 quiet panic=-1"
        if let interval = options.writerIntervalMs { commandLine += " dpm.writer=\(interval)" }
        if !options.agent { commandLine += " dpm.agent=off" }
        if !options.blockedCommands.isEmpty { commandLine += " dpm.agent-block=" + options.blockedCommands.joined(separator: ",") }
        let boot = TestQEMU.Boot(kernel: image.kernel, initrd: image.initrd, commandLine: commandLine, console: directory + "/console.log",
                                 ports: [("org.qemu.guest_agent.0", directory + "/qga.sock"), ("org.dpm.test.0", directory + "/channel.sock")])
        qemu = try TestQEMU(test, directory: directory, disks: [.init(disk, format: "raw")], boot: boot)
        try qemu.resume()
        try waitUntilReady()
    }

    /// The console text so far.
    public var consoleText: String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }

    /// Waits for the init's ready line (about 4 s under TCG on an idle machine; the limit
    /// is generous for a loaded one).
    private func waitUntilReady(seconds: TimeInterval = 120) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let text = consoleText
            if text.contains("DPM-GUEST-READY") { return }
            if text.contains("DPM-GUEST-FAILED") || Date() > deadline {
                throw TestLineSocket.Failure(description: "the test guest did not start: \(text.suffix(2000))")
            }
            usleep(50_000)
        }
    }

    /// Sends one command on the test channel and returns the reply line. The channel, like
    /// any QEMU chardev, serves one client at a time: the connection is closed at once.
    public func ask(_ command: String, timeout: TimeInterval = 30) throws -> String {
        let channel = try TestLineSocket(path: channelSocket, timeout: timeout)
        defer { channel.close() }
        try channel.send(line: command)
        return String(decoding: try channel.readLine(), as: UTF8.self)
    }

    /// The number of whole records the guest's writer has appended so far.
    public func records() throws -> Int {
        let reply = try ask("records")
        guard let count = Int(reply) else { throw TestLineSocket.Failure(description: "test channel: records: \(reply)") }
        return count
    }

    /// Checks a record file: how many records it holds, and the first problem (a record
    /// whose bytes do not match its number, or a partial record at the end), if any.
    public static func checkRecords(_ bytes: [UInt8]) -> (count: Int, problem: String?) {
        let whole = bytes.count / recordSize
        for index in 0..<whole {
            let record = bytes[(index * recordSize)..<((index + 1) * recordSize)]
            let digits = String(format: "%07d", index)
            let fill = digits.utf8.last ?? 0x30
            let expected = [0x52] + Array(digits.utf8) + [UInt8](repeating: fill, count: recordSize - 9) + [0x0A]
            guard record.elementsEqual(expected) else {
                return (index, "record \(index) is torn or misplaced: \(String(decoding: record.prefix(24), as: UTF8.self))…")
            }
        }
        if bytes.count % recordSize != 0 {
            return (whole, "the file ends with a partial record of \(bytes.count % recordSize) bytes")
        }
        return (whole, nil)
    }

    /// The kernel and initramfs, built once per test process.
    private static func image() throws -> (kernel: String, initrd: String) {
        lock.lock()
        defer { lock.unlock() }
        if let built { return built }
        let result = try runProcess([TestSupport.repositoryRoot + "/scripts/build-test-guest.sh"], timeout: 900)
        let directory = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, FileManager.default.fileExists(atPath: directory + "/initrd.gz") else {
            let why = "scripts/build-test-guest.sh failed (it needs apt-get access to Debian's archive): \(result.stderr.suffix(1500))"
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail(why)
            }
            throw XCTSkip(why)
        }
        let paths = (kernel: directory + "/vmlinuz", initrd: directory + "/initrd.gz")
        built = paths
        return paths
    }

    nonisolated(unsafe) private static var built: (kernel: String, initrd: String)?
    private static let lock = NSLock()

    /// The client the hooks run: sends argv[2] as one line to the socket argv[1], prints the reply.
    private static let channelScript = """
        import socket, sys
        channel = socket.socket(socket.AF_UNIX)
        channel.settimeout(30)
        channel.connect(sys.argv[1])
        channel.sendall(sys.argv[2].encode() + b"\\n")
        reply = b""
        while not reply.endswith(b"\\n"):
            chunk = channel.recv(4096)
            if not chunk:
                sys.exit("the test channel closed before it answered")
            reply += chunk
        sys.stdout.write(reply.decode())

        """
}
