import Foundation
import PluginAPI
import XCTest
@testable import Host
import TestSupport

/// The loader's refusals and the C plugin round trip, with plugins built by `cc` from the
/// header alone.
final class PluginLoaderTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try TestSupport.temporaryDirectory(self)
    }

    func exampleSource() -> String { TestSupport.repositoryRoot + "/examples/c-plugin/example_plugin.c" }
    func badSource() -> String { TestSupport.repositoryRoot + "/Tests/HostTests/Fixtures/bad_plugin.c" }

    /// Loads one file and returns the refusal reason, failing if it loaded.
    func refusal(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        switch PluginLoader.loadFile(path) {
        case .success: XCTFail("\(path) loaded but should have been refused", file: file, line: line); return ""
        case .failure(let failure):
            XCTAssertEqual(failure.path, path, file: file, line: line)
            return failure.reason
        }
    }

    func testGarbageFileIsNotASharedObject() throws {
        let path = directory + "/libgarbage.so"
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: URL(fileURLWithPath: path))
        let reason = refusal(path)
        XCTAssertTrue(reason.contains("not a loadable shared object"), reason)
        XCTAssertTrue(reason.contains("cc -shared -fPIC"), reason)
    }

    func testMissingEntrySymbol() throws {
        let path = directory + "/libnoentry.so"
        try TestSupport.compilePlugin(source: badSource(), output: path, defines: ["BAD_NO_ENTRY"])
        let reason = refusal(path)
        XCTAssertTrue(reason.contains("no entry symbol `dpm_plugin_entry`"), reason)
        XCTAssertTrue(reason.contains("DPM_PLUGIN_ENTRY"), reason)
    }

    func testABIMajorMismatch() throws {
        let path = directory + "/libabi2.so"
        try TestSupport.compilePlugin(source: badSource(), output: path, defines: ["BAD_ABI_MAJOR"])
        let reason = refusal(path)
        XCTAssertTrue(reason.contains("built for dpm ABI 2.0"), reason)
        XCTAssertTrue(reason.contains("rebuild the plugin"), reason)
    }

    func testTableTooSmall() throws {
        let path = directory + "/libsmall.so"
        try TestSupport.compilePlugin(source: badSource(), output: path, defines: ["BAD_SMALL_TABLE"])
        let reason = refusal(path)
        XCTAssertTrue(reason.contains("plugin table is 16 bytes"), reason)
    }

    func testDifferentSwiftToolchain() throws {
        let path = directory + "/libswiftstamp.so"
        try TestSupport.compilePlugin(source: badSource(), output: path, defines: ["BAD_SWIFT_STAMP"])
        let reason = refusal(path)
        XCTAssertTrue(reason.contains("built with Swift toolchain 'swift-5.9"), reason)
        XCTAssertTrue(reason.contains(PluginLoader.toolchainStamp), reason)
    }

    func testEntryReturningAnError() throws {
        let path = directory + "/libfails.so"
        try TestSupport.compilePlugin(source: badSource(), output: path, defines: ["BAD_ENTRY_FAILS"])
        let reason = refusal(path)
        XCTAssertTrue(reason.contains("dpm_plugin_entry failed with status invalid"), reason)
        XCTAssertTrue(reason.contains("licence file /etc/bad.lic is missing"), reason)
    }

    func testDuplicateProviderIDIsRefusedAndOthersStillLoad() throws {
        try TestSupport.compilePlugin(source: exampleSource(), output: directory + "/libfirst.so")
        try TestSupport.compilePlugin(source: exampleSource(), output: directory + "/libsecond.so")
        try TestSupport.compilePlugin(source: exampleSource(), output: directory + "/libthird.so",
                                      defines: ["EXAMPLE_PROVIDER_ID=\"example-third\""])
        try Data("junk".utf8).write(to: URL(fileURLWithPath: directory + "/libjunk.so"))
        let report = PluginLoader.load(directories: [directory])
        XCTAssertEqual(report.providers.map(\.info.id).sorted(), ["example-files", "example-third"])
        XCTAssertEqual(report.failures.map { ($0.path as NSString).lastPathComponent }.sorted(), ["libjunk.so", "libsecond.so"])
        let duplicate = try XCTUnwrap(report.failures.first { $0.path.hasSuffix("libsecond.so") })
        XCTAssertTrue(duplicate.reason.contains("provider id 'example-files' is already registered by \(directory)/libfirst.so"),
                      duplicate.reason)
    }

    /// A plugin built against the ABI 1.0 header (kept as a fixture) still loads and works
    /// under this host: tables only grow at their end, and the host reads no field beyond
    /// the size the plugin filled.
    func testPluginBuiltAgainstTheABI10HeaderStillLoads() throws {
        let path = directory + "/libold.so"
        try TestSupport.compilePlugin(source: exampleSource(), output: path,
                                      include: TestSupport.repositoryRoot + "/Tests/HostTests/Fixtures/abi-1.0")
        guard case .success(let providers) = PluginLoader.loadFile(path) else { return XCTFail("the 1.0 plugin was refused") }
        XCTAssertEqual(providers.map(\.info.id), ["example-files"])
        XCTAssertEqual(providers.first?.info.abiVersion, "1.0")
        let files = directory + "/files"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        try Data(repeating: 3, count: 8192).write(to: URL(fileURLWithPath: files + "/old.img"))
        let data = DataDirectory(path: directory + "/data")
        try data.create()
        var settings = try Settings(dataDirectory: data)
        try settings.set("example-files.directory", files)
        let registry = try ProviderRegistry(dataDirectory: data, settings: settings, directories: [directory])
        XCTAssertEqual(try registry.workload("example-files").enumerate().map(\.id), ["old.img"])
    }

    func testCPluginRoundTripThroughTheHost() throws {
        try TestSupport.compilePlugin(source: exampleSource(), output: directory + "/libexample.so")
        let files = directory + "/files"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        var content = [UInt8](repeating: 0, count: 3 << 20)
        for index in stride(from: 0, to: content.count, by: 4096) { content[index] = UInt8(truncatingIfNeeded: index >> 12) }
        try Data(content).write(to: URL(fileURLWithPath: files + "/disk1.img"))

        let data = DataDirectory(path: directory + "/data")
        try data.create()
        var settings = try Settings(dataDirectory: data)
        try settings.set("example-files.directory", files)
        let registry = try ProviderRegistry(dataDirectory: data, settings: settings, directories: [directory])
        let provider = try registry.workload("example-files")

        let sources = try provider.enumerate()
        XCTAssertEqual(sources, [DataSourceDescription(id: "disk1.img", name: "disk1.img", kind: "file-disk", size: UInt64(content.count))])

        let snapshot = try provider.prepareSnapshot(SnapshotRequest(datasource: "disk1.img", mode: .full), context: try provider.context())
        XCTAssertEqual(snapshot.description.consistency, .crash)
        XCTAssertEqual(snapshot.description.streams, [StreamDescription(name: "data", kind: .block, size: UInt64(content.count))])
        let extents = try snapshot.extents(stream: 0)
        XCTAssertEqual(extents.reduce(0) { $0 + $1.length }, UInt64(content.count))
        var readBack = [UInt8](repeating: 0xee, count: content.count)
        try readBack.withUnsafeMutableBytes { try snapshot.read(stream: 0, offset: 0, into: $0) }
        XCTAssertEqual(readBack, content)
        XCTAssertNil(try snapshot.changes(stream: 0, since: "anything"), "the example does not track changes")
        _ = try snapshot.finish(committed: true)

        // The error path: a data source that does not exist, reported with the plugin's message.
        XCTAssertThrowsError(try provider.prepareSnapshot(SnapshotRequest(datasource: "missing.img", mode: .full),
                                                          context: try provider.context())) { error in
            let error = error as? HostError
            XCTAssertEqual(error?.code, .notFound)
            XCTAssertTrue(error?.message.contains("example-files: data source missing.img: cannot open") ?? false, "\(String(describing: error))")
        }
        // Reads past the end are refused by the plugin, not trapped.
        let second = try provider.prepareSnapshot(SnapshotRequest(datasource: "disk1.img", mode: .full), context: try provider.context())
        var small = [UInt8](repeating: 0, count: 16)
        XCTAssertThrowsError(try small.withUnsafeMutableBytes { try second.read(stream: 0, offset: UInt64(content.count), into: $0) })
        _ = try second.finish(committed: false)
        // An operation the C plugin leaves NULL is unsupported, not a crash.
        XCTAssertThrowsError(try provider.command("vm.list")) { error in
            XCTAssertEqual((error as? HostError)?.code, .unsupported)
        }
    }

    func testUnconfiguredCPluginSaysWhatToSet() throws {
        try TestSupport.compilePlugin(source: exampleSource(), output: directory + "/libexample.so",
                                      defines: ["EXAMPLE_PROVIDER_ID=\"example-unconfigured\""])
        let data = DataDirectory(path: directory + "/data")
        let registry = try ProviderRegistry(dataDirectory: data, settings: try Settings(dataDirectory: data), directories: [directory])
        XCTAssertThrowsError(try registry.workload("example-unconfigured").enumerate()) { error in
            XCTAssertEqual((error as? HostError)?.code, .invalid)
            XCTAssertTrue("\(error)".contains("dpm config set example-unconfigured.directory DIR"), "\(error)")
        }
    }

    func testEnableAndDisableArePersistedAndHonoured() throws {
        try TestSupport.compilePlugin(source: exampleSource(), output: directory + "/libexample.so",
                                      defines: ["EXAMPLE_PROVIDER_ID=\"example-toggle\""])
        let data = DataDirectory(path: directory + "/data")
        let registry = try ProviderRegistry(dataDirectory: data, settings: try Settings(dataDirectory: data), directories: [directory])
        try registry.setEnabled("example-toggle", false)

        let reloaded = try ProviderRegistry(dataDirectory: data, settings: try Settings(dataDirectory: data), directories: [directory])
        XCTAssertEqual(reloaded.infos.first { $0.id == "example-toggle" }?.enabled, false)
        XCTAssertTrue(reloaded.enabledWorkloads.isEmpty)
        XCTAssertThrowsError(try reloaded.workload("example-toggle")) { error in
            XCTAssertTrue("\(error)".contains("dpm plugins enable example-toggle"), "\(error)")
        }
        try reloaded.setEnabled("example-toggle", true)
        let again = try ProviderRegistry(dataDirectory: data, settings: try Settings(dataDirectory: data), directories: [directory])
        XCTAssertNoThrow(try again.workload("example-toggle"))
        XCTAssertThrowsError(try again.setEnabled("no-such-provider", false)) { error in
            XCTAssertEqual((error as? HostError)?.code, .notFound)
        }
    }
}
