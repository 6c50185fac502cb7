import Foundation
import TestSupport
import XCTest

/// HyperVHost end to end through the dpm binary: register VMs with real VHDX/VHD/qcow2/raw
/// disks made by qemu-img, back them up at rest, change them, and recover every point to
/// every target, checked with qemu-img.
final class VMProtectionTests: XCTestCase {
    var root = ""
    var data: String { root + "/data" }

    override func setUpWithError() throws {
        try TestSupport.require("qemu-img")
        try TestSupport.require("qemu-io")
        root = try TestSupport.temporaryDirectory(self)
    }

    @discardableResult
    func dpm(_ arguments: [String], expect status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: data)
        XCTAssertEqual(result.status, status, "dpm \(arguments.joined(separator: " ")): \(result.stdout) \(result.stderr)", file: file, line: line)
        return result
    }

    func tool(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try runProcess(arguments)
        XCTAssertEqual(result.status, 0, "\(arguments.joined(separator: " ")): \(result.stdout) \(result.stderr)", file: file, line: line)
        return result
    }

    func qemuWrite(_ path: String, format: String, _ command: String) throws {
        try tool(["qemu-io", "-f", format, "-c", command, path])
    }

    func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try dpm(arguments + ["--json"])
        return try XCTUnwrap(try result.json() as? [String: Any])
    }

    func testFullIncrementalAndExpressFullRestoreToEveryTarget() throws {
        let vhdx = root + "/vm/app.vhdx", vhd = root + "/vm/app-data.vhd"
        try FileManager.default.createDirectory(atPath: root + "/vm", withIntermediateDirectories: true)
        try tool(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", vhdx, "96M"])
        try tool(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", vhd, "40M"])
        try qemuWrite(vhdx, format: "vhdx", "write -P 0x11 0 3M")
        try qemuWrite(vhdx, format: "vhdx", "write -P 0x12 70M 2M")
        try qemuWrite(vhd, format: "vpc", "write -P 0x21 4M 1M")
        try dpm(["vm", "add", "app", "--disk", vhdx, "--disk", vhd])

        var states: [(String, String, String)] = []  // (rp id, snapshot of vhdx, snapshot of vhd)
        for (round, mode) in ["--full", "--incremental", "--express-full"].enumerated() {
            if round > 0 {
                try qemuWrite(vhdx, format: "vhdx", "write -P 0x\(30 + round) \(10 * round)M 1M")
                try qemuWrite(vhd, format: "vpc", "write -z \(4 + round)M 512k")
            }
            let report = try json(["backup", "app", mode])
            let point = try XCTUnwrap(report["recovery_point"] as? [String: Any])
            XCTAssertEqual(point["kind"] as? String, String(mode.dropFirst(2)))
            XCTAssertEqual(point["consistency"] as? String, "application")
            // Only allocated data is read: far less than the 136 MiB of virtual disks.
            XCTAssertLessThanOrEqual(point["bytes_read"] as! Int, 12 << 20, "only allocated blocks are read (136 MiB of virtual disks)")
            let id = try XCTUnwrap(point["id"] as? String)
            let copyX = root + "/state-\(round).vhdx", copyV = root + "/state-\(round).vhd"
            try FileManager.default.copyItem(atPath: vhdx, toPath: copyX)
            try FileManager.default.copyItem(atPath: vhd, toPath: copyV)
            states.append((id, copyX, copyV))
        }
        let list = try json(["rp", "list", "app"])
        XCTAssertEqual((list["recovery_points"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }, ["full", "incremental", "express-full"])

        for (number, state) in states.enumerated() {
            let (id, expectedX, expectedV) = state
            // --copy-disks: the disks in their own formats.
            let copy = root + "/copy-\(number)"
            try dpm(["recover", "app", "--rp", id, "--copy-disks", copy])
            XCTAssertTrue(try tool(["qemu-img", "check", copy + "/app.vhdx"]).stdout.contains("No errors"))
            try tool(["qemu-img", "compare", copy + "/app.vhdx", expectedX])
            try tool(["qemu-img", "compare", copy + "/app-data.vhd", expectedV])
            // --alternate: a VM copy in another format, with its description.
            let alternate = root + "/alt-\(number)"
            try dpm(["recover", "app", "--rp", id, "--alternate", alternate, "--format", "vhd", "--host", "hv2"])
            try tool(["qemu-img", "compare", alternate + "/app/app.vhd", expectedX])
            let description = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: alternate + "/app/vm.json"))) as? [String: Any]
            XCTAssertEqual(description?["host"] as? String, "hv2")
            // --original: replace the disks in place.
            try dpm(["recover", "app", "--rp", id, "--original"])
            XCTAssertTrue(try tool(["qemu-img", "check", vhdx]).stdout.contains("No errors"))
            try tool(["qemu-img", "compare", vhdx, expectedX])
            try tool(["qemu-img", "compare", vhd, expectedV])
        }
        try dpm(["verify"])
    }

    func testQcow2AndRawDisksAndDeletedVMs() throws {
        let qcow2 = root + "/q.qcow2", raw = root + "/r.raw"
        try tool(["qemu-img", "create", "-q", "-f", "qcow2", qcow2, "64M"])
        try qemuWrite(qcow2, format: "qcow2", "write -P 0x51 5M 3M")
        try tool(["qemu-img", "create", "-q", "-f", "raw", raw, "32M"])
        try qemuWrite(raw, format: "raw", "write -P 0x52 1M 1M")
        try dpm(["vm", "add", "mixed", "--disk", qcow2, "--disk", raw])
        try dpm(["backup", "mixed"])
        let out = root + "/out"
        try dpm(["recover", "mixed", "--copy-disks", out])
        try tool(["qemu-img", "compare", out + "/q.vhdx", qcow2])
        try tool(["qemu-img", "compare", "-f", "raw", "-F", "raw", out + "/r.raw", raw])
        let refusal = try dpm(["recover", "mixed", "--original"], expect: 1)
        XCTAssertTrue(refusal.stderr.contains("qcow2, which dpm cannot write in place"), refusal.stderr)
        // A VM that left the inventory cannot be recovered "in place".
        try dpm(["vm", "remove", "mixed"])
        let unknown = try dpm(["recover", "mixed", "--original"], expect: 1)
        XCTAssertTrue(unknown.stderr.contains("no longer in the inventory"), unknown.stderr)
        try dpm(["recover", "mixed", "--alternate", root + "/alt"])
    }

    func testChangingAVMKeepsItsIdAndItsChain() throws {
        let disk = root + "/s.vhdx", second = root + "/s2.vhd"
        try tool(["qemu-img", "create", "-q", "-f", "vhdx", disk, "16M"])
        try tool(["qemu-img", "create", "-q", "-f", "vpc", second, "8M"])
        try dpm(["vm", "add", "keep", "--disk", disk, "--host", "hv1"])
        let before = try json(["vm", "show", "keep"])
        try dpm(["backup", "keep"])
        try dpm(["vm", "set", "keep", "--host", "hv2", "--storage", "csv", "--cluster", "prod"])
        let after = try json(["vm", "show", "keep"])
        XCTAssertEqual(after["id"] as? String, before["id"] as? String)
        XCTAssertEqual(after["host"] as? String, "hv2")
        XCTAssertEqual(after["cluster"] as? String, "prod")
        try dpm(["vm", "set", "keep", "--storage", "local", "--cluster", ""])
        XCTAssertNil(try json(["vm", "show", "keep"])["cluster"])
        let hooks = try dpm(["vm", "set", "keep", "--pre-freeze", "true"], expect: 1)
        XCTAssertTrue(hooks.stderr.contains("link the VM to its QEMU with --qmp"), hooks.stderr)
        let next = try XCTUnwrap(try json(["backup", "keep"])["recovery_point"] as? [String: Any])
        XCTAssertEqual(next["kind"] as? String, "incremental", "the chain goes on")
        // Adding a disk is validated like a new registration.
        try dpm(["vm", "set", "keep", "--disk", disk, "--disk", second])
        XCTAssertEqual((try json(["vm", "show", "keep"])["disks"] as? [Any])?.count, 2)
        let bad = try dpm(["vm", "set", "keep", "--disk", "//10.1.1.1/share/x.vhdx"], expect: 1)
        XCTAssertTrue(bad.stderr.contains("by IP address"), bad.stderr)
    }

    /// A VM removed and added again under its name is a new data source (a new id): it backs
    /// up by name, and the old one's points stay recoverable by its id.
    func testAVMAddedAgainUnderItsNameBacksUpAsANewDataSource() throws {
        let disk = root + "/again.vhdx"
        try tool(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", disk, "16M"])
        try qemuWrite(disk, format: "vhdx", "write -P 0x21 0 1M")
        try dpm(["vm", "add", "again", "--disk", disk])
        let old = try XCTUnwrap((try json(["backup", "again"])["recovery_point"] as? [String: Any])?["datasource_id"] as? String)
        try dpm(["vm", "remove", "again"])
        try dpm(["vm", "add", "again", "--disk", disk])
        let new = try XCTUnwrap((try json(["backup", "again"])["recovery_point"] as? [String: Any])?["datasource_id"] as? String)
        XCTAssertNotEqual(old, new)
        XCTAssertEqual((try json(["rp", "list", old])["recovery_points"] as? [Any])?.count, 1)
        XCTAssertEqual((try json(["rp", "list", new])["recovery_points"] as? [Any])?.count, 1)
    }

    func testRegistrationRefusalsFollowTheSeed() throws {
        let disk = root + "/d.vhdx"
        try tool(["qemu-img", "create", "-q", "-f", "vhdx", disk, "16M"])
        let split = try dpm(["vm", "add", "split", "--disk", disk, "--disk", "//fileserver/vms/split.vhdx"], expect: 1)
        XCTAssertTrue(split.stderr.contains("split between local storage"), split.stderr)
        let byIP = try dpm(["vm", "add", "ip", "--disk", "//10.0.0.5/vms/ip.vhdx"], expect: 1)
        XCTAssertTrue(byIP.stderr.contains("by IP address"), byIP.stderr)
        let byIPv6 = try dpm(["vm", "add", "ip6", "--disk", "\\\\[fe80::1]\\vms\\ip.vhdx"], expect: 1)
        XCTAssertTrue(byIPv6.stderr.contains("by IP address"), byIPv6.stderr)
        let unmounted = try dpm(["vm", "add", "smb", "--disk", "//fileserver/vms/a.vhdx"], expect: 1)
        XCTAssertTrue(unmounted.stderr.contains("is not mounted on this host"), unmounted.stderr)
        let garbage = root + "/garbage.vhdx"
        try Data("vhdxfile".utf8 + [UInt8](repeating: 0xee, count: 300_000)).write(to: URL(fileURLWithPath: garbage))
        let bad = try dpm(["vm", "add", "bad", "--disk", garbage], expect: 1)
        XCTAssertTrue(bad.stderr.contains(garbage), bad.stderr)
        try dpm(["vm", "add", "good", "--disk", disk])
        let duplicate = try dpm(["vm", "add", "good", "--disk", disk], expect: 1)
        XCTAssertTrue(duplicate.stderr.contains("already registered"), duplicate.stderr)
        let csv = try dpm(["vm", "add", "c", "--disk", disk, "--storage", "csv"], expect: 1)
        XCTAssertTrue(csv.stderr.contains("--cluster"), csv.stderr)
        try dpm(["vm", "add", "c", "--disk", disk, "--storage", "csv", "--cluster", "prod"])
        // An SMB share mapped to a local folder is accepted, and recovery paths on SMB stay under 260 characters.
        try dpm(["config", "set", "hyperv-host.shares", "//fileserver/vms=\(root)"])
        try dpm(["vm", "add", "onshare", "--disk", "//fileserver/vms/d.vhdx"])
        try dpm(["backup", "onshare"])
        let long = "//fileserver/vms/" + String(repeating: "x", count: 250)
        let tooLong = try dpm(["recover", "onshare", "--copy-disks", long], expect: 1)
        XCTAssertTrue(tooLong.stderr.contains("under 260"), tooLong.stderr)
        let toHost = try dpm(["recover", "onshare", "--alternate", "//fileserver/vms/r", "--host", "hv9"], expect: 1)
        XCTAssertTrue(toHost.stderr.contains("remote SMB share is not supported"), toHost.stderr)
    }

    func testScratchSpaceIsCheckedAndCanBeOverridden() throws {
        let mount = root + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        guard try runProcess(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", mount]).status == 0 else {
            throw XCTSkip("cannot mount a small tmpfs here (needs root)")
        }
        defer { _ = try? runProcess(["umount", mount]) }
        let disk = mount + "/big.vhdx"
        try tool(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", disk, "1G"])
        try dpm(["vm", "add", "big", "--disk", disk])
        let refused = try dpm(["backup", "big"], expect: 1)
        XCTAssertTrue(refused.stderr.contains("scratch space"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("× churn rate 10.0%"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--ignore-scratch-space"), refused.stderr)
        try dpm(["backup", "big", "--ignore-scratch-space"])
    }

    func testWindowsMadeVHDXFixturesBackUpAndRestoreByteForByte() throws {
        for name in ["fixed", "dynamic"] {
            let source = "/work/shared/fixtures/hyperv/\(name).vhdx.gz"
            let fixture = TestSupport.repositoryRoot + "/../shared/fixtures/hyperv/\(name).vhdx.gz"
            let path = FileManager.default.fileExists(atPath: fixture) ? fixture : source
            guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("the Windows-made fixtures are not here") }
            let disk = root + "/\(name).vhdx"
            try tool(["sh", "-c", "zcat '\(path)' > '\(disk)'"])
            try tool(["qemu-img", "convert", "-O", "raw", disk, root + "/\(name).reference"])
            try dpm(["vm", "add", name, "--disk", disk])
            try dpm(["backup", name])
            try dpm(["recover", name, "--raw", root + "/\(name)-raw"])
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: root + "/\(name)-raw/disk0.raw")),
                           try Data(contentsOf: URL(fileURLWithPath: root + "/\(name).reference")))
            try dpm(["recover", name, "--copy-disks", root + "/\(name)-copy"])
            try tool(["qemu-img", "compare", root + "/\(name)-copy/\(name).vhdx", disk])
        }
    }
}
