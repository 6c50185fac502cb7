import Foundation
import TestSupport
import XCTest

/// `dpm plugins …` and `dpm datasources list`, through the built binary with the four
/// real plugin libraries loaded into one process.
final class PluginsCommandTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try TestSupport.temporaryDirectory(self)
    }

    func providers(_ result: CommandResult) throws -> [[String: Any]] {
        let object = try XCTUnwrap(try result.json() as? [String: Any])
        return try XCTUnwrap(object["providers"] as? [[String: Any]])
    }

    func testListsTheFourProvidersWithTheirDescriptions() throws {
        let result = try DPM.run(["plugins", "list", "--json"], dataDirectory: directory + "/data")
        XCTAssertEqual(result.status, 0, result.stderr)
        let list = try providers(result)
        XCTAssertEqual(list.compactMap { $0["id"] as? String }.sorted(), ["guest-app", "hyperv-host", "online-tier", "tape-library"])
        for provider in list {
            for key in ["kind", "version", "abi_version", "capabilities", "path", "status"] {
                XCTAssertNotNil(provider[key], "\(provider["id"] ?? "?") lacks \(key)")
            }
            XCTAssertEqual(provider["abi_version"] as? String, "1.1")
            XCTAssertTrue(FileManager.default.fileExists(atPath: provider["path"] as? String ?? ""))
        }
        let online = try XCTUnwrap(list.first { $0["id"] as? String == "online-tier" })
        XCTAssertEqual(online["kind"] as? String, "tier")
        XCTAssertEqual(online["max_retention_days"] as? Int, 3360)
        XCTAssertTrue((online["capabilities"] as? [String] ?? []).contains("long-term-retention"))
    }

    func testBadLibrariesOnThePluginPathAreReportedAndTheGoodOnesStillLoad() throws {
        let plugins = directory + "/plugins"
        try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
        try Data(repeating: 0x5a, count: 1000).write(to: URL(fileURLWithPath: plugins + "/libgarbage.so"))
        try TestSupport.compilePlugin(source: TestSupport.repositoryRoot + "/Tests/HostTests/Fixtures/bad_plugin.c",
                                      output: plugins + "/libnoentry.so", defines: ["BAD_NO_ENTRY"])
        let result = try DPM.run(["plugins", "list", "--json"], dataDirectory: directory + "/data",
                                 environment: ["DPM_PLUGIN_PATH": plugins])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try providers(result).count, 4)
        let object = try XCTUnwrap(try result.json() as? [String: Any])
        let failures = try XCTUnwrap(object["failures"] as? [[String: String]])
        XCTAssertEqual(failures.compactMap { $0["path"] }.sorted(), [plugins + "/libgarbage.so", plugins + "/libnoentry.so"])
        XCTAssertTrue(failures.first { $0["path"]!.hasSuffix("garbage.so") }?["reason"]?.contains("not a loadable shared object") ?? false)
        XCTAssertTrue(failures.first { $0["path"]!.hasSuffix("noentry.so") }?["reason"]?.contains("no entry symbol") ?? false)

        let human = try DPM.run(["plugins", "list"], dataDirectory: directory + "/data", environment: ["DPM_PLUGIN_PATH": plugins])
        XCTAssertTrue(human.stdout.contains("refused \(plugins)/libgarbage.so: not a loadable shared object"), human.stdout)
    }

    func testDisableIsPersistedAndStopsEnumeration() throws {
        let data = directory + "/data"
        XCTAssertEqual(try DPM.run(["plugins", "disable", "guest-app"], dataDirectory: data).status, 0)
        let info = try DPM.run(["plugins", "info", "guest-app", "--json"], dataDirectory: data)
        let object = try XCTUnwrap(try info.json() as? [String: Any])
        XCTAssertEqual(object["enabled"] as? Bool, false)
        let sources = try DPM.run(["datasources", "list", "--json"], dataDirectory: data)
        XCTAssertFalse(sources.stdout.contains("guest-app"), "a disabled provider must not be asked to enumerate")
        XCTAssertEqual(try DPM.run(["plugins", "enable", "guest-app"], dataDirectory: data).status, 0)
        XCTAssertTrue(try DPM.run(["datasources", "list", "--json"], dataDirectory: data).stdout.contains("guest-app"))
    }

    func testUsageErrorsExitWithTwoAndHelpWorksEverywhere() throws {
        let unknown = try DPM.run(["plugins", "frobnicate"], dataDirectory: nil)
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("unknown command"), unknown.stderr)
        XCTAssertEqual(try DPM.run(["plugins", "info"], dataDirectory: nil).status, 2)
        XCTAssertEqual(try DPM.run(["plugins", "list", "--bogus"], dataDirectory: nil).status, 2)
        let missing = try DPM.run(["plugins", "info", "no-such"], dataDirectory: directory)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no provider 'no-such'"), missing.stderr)
        for command in [["--help"], ["plugins", "--help"], ["plugins", "list", "--help"], ["datasources", "list", "--help"],
                        ["config", "set", "--help"], ["version", "--help"]] {
            let help = try DPM.run(command, dataDirectory: nil)
            XCTAssertEqual(help.status, 0, "\(command)")
            XCTAssertTrue(help.stdout.contains("dpm"), "\(command): \(help.stdout)")
        }
    }
}
