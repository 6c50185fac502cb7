import Foundation
import TestSupport
import XCTest

/// A test case that backs up a running VM through the dpm binary: its data directory under
/// `root`, the VM's QEMU and the VM's id in dpm (RunningVMTests, RealGuestTests).
protocol RunningVMHarness: XCTestCase {
    var root: String { get }
    var qemu: TestQEMU! { get }
    var vmID: String { get }
}

extension RunningVMTests {
    /// Creates the disks (a 64 MiB VHDX with 1 MiB blocks and a 64 MiB qcow2, each with
    /// `prefill` bytes of 0x01 from 8 MiB), starts QEMU on them (guest running) and registers
    /// VM "vm" with `extra` options. After the test, checks that nothing of dpm's is left.
    @discardableResult
    func startVM(wiring: TestQEMU.Wiring = .drives, prefill: Int = 4 << 20, extra: [String] = []) throws -> TestQEMU {
        let vhdx = root + "/vm/sys.vhdx", qcow2 = root + "/vm/data.qcow2"
        try FileManager.default.createDirectory(atPath: root + "/vm", withIntermediateDirectories: true)
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", vhdx, "64M"]).status, 0)
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "qcow2", qcow2, "64M"]).status, 0)
        for (path, format) in [(vhdx, "vhdx"), (qcow2, "qcow2")] where prefill > 0 {
            XCTAssertEqual(try runProcess(["qemu-io", "-f", format, "-c", "write -P 1 8M \(prefill)", path]).status, 0)
        }
        let qemu = try TestQEMU(self, directory: root, disks: [.init(vhdx, format: "vhdx"), .init(qcow2, format: "qcow2")], wiring: wiring)
        try qemu.resume()
        self.qemu = qemu
        let added = try dpm(["vm", "add", "vm", "--qmp", qemu.qmpSocket, "--json"] + extra)
        vmID = (try added.json() as? [String: Any])?["id"] as? String ?? ""
        addTeardownBlock { [weak self] in self?.assertNothingLeft() }
        return qemu
    }
}

/// dpm runs, recoveries and the checks every test ends with.
extension RunningVMHarness {
    var data: String { root + "/data" }

    @discardableResult
    func dpm(_ arguments: [String], environment: [String: String] = [:], expect status: Int32? = 0,
             file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: data, environment: environment)
        if let status {
            XCTAssertEqual(result.status, status, "dpm \(arguments.joined(separator: " ")): \(result.stdout) \(result.stderr)", file: file, line: line)
        }
        return result
    }

    /// Runs `dpm backup VM MODE --json`; returns the report and its recovery point.
    func backup(_ mode: String = "--incremental", vm: String = "vm", environment: [String: String] = [:],
                file: StaticString = #filePath, line: UInt = #line) throws -> (report: [String: Any], point: [String: Any]) {
        let result = try dpm(["backup", vm, mode, "--json"], environment: environment, file: file, line: line)
        let report = try XCTUnwrap(try result.json() as? [String: Any], file: file, line: line)
        return (report, try XCTUnwrap(report["recovery_point"] as? [String: Any], file: file, line: line))
    }

    /// Recovers a point's disks (`--copy-disks`, as vhdx or raw) and returns their paths, in disk order.
    func recover(_ rp: String, vm: String = "vm", format: String = "vhdx") throws -> [String] {
        let directory = root + "/out-\(UUID().uuidString.prefix(6))"
        try dpm(["recover", vm, "--rp", rp, "--copy-disks", directory, "--format", format])
        return qemu.disks.map { directory + "/" + (($0.path as NSString).lastPathComponent as NSString).deletingPathExtension + "." + format }
    }

    /// Asserts that a recovered point equals the live disks, compared by `qemu-img compare`
    /// against the test's own NBD export of each live disk.
    func assertRecoveredEqualsLive(_ rp: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for (index, path) in try recover(rp).enumerated() {
            let result = try qemu.withLiveExport(disk: index) { uri in try runProcess(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", path, uri]) }
            XCTAssertEqual(result.status, 0, "disk\(index) of \(rp): \(result.stdout) \(result.stderr)", file: file, line: line)
        }
    }

    /// The logical content of a disk image.
    func rawContent(_ path: String) throws -> [UInt8] {
        let raw = path + ".raw"
        XCTAssertEqual(try runProcess(["qemu-img", "convert", "-O", "raw", path, raw]).status, 0)
        defer { unlink(raw) }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: raw)))
    }

    /// dpm's name prefix for this VM's objects in QEMU (FleeceNames).
    var prefix: String { "dpm-" + String(vmID.filter(\.isHexDigit).prefix(8)) }

    /// No overlay node, export or job of dpm's in QEMU, at most one dirty bitmap per disk
    /// (the current generation), no scratch file beside the disks, no NBD socket.
    func assertNothingLeft(file: StaticString = #filePath, line: UInt = #line) {
        guard let qemu, qemu.monitor != nil, let objects = try? qemu.objects(prefix: prefix) else { return }
        XCTAssertEqual(objects.nodes + objects.exports + objects.jobs, [], "QEMU objects left", file: file, line: line)
        for (node, names) in objects.bitmaps {
            XCTAssertLessThanOrEqual(names.count, 1, "stale bitmaps on \(node): \(names)", file: file, line: line)
        }
        let folders = Set(qemu.disks.map { ($0.path as NSString).deletingLastPathComponent })
        let scratch = folders.flatMap { (try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? [] }.filter { $0.hasPrefix(".dpm") }
        XCTAssertEqual(scratch, [], "scratch files left", file: file, line: line)
        let sockets = (FileManager.default.enumerator(atPath: data)?.allObjects as? [String] ?? []).filter { $0.hasSuffix("nbd.sock") }
            + ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix(prefix) }
        XCTAssertEqual(sockets, [], "NBD sockets left", file: file, line: line)
    }

    func waitFor(_ what: String, seconds: TimeInterval = 15, file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool) rethrows {
        let deadline = Date().addingTimeInterval(seconds)
        while try !condition() {
            guard Date() < deadline else { XCTFail("timed out waiting for \(what)", file: file, line: line); return }
            usleep(20_000)
        }
    }
}
