// swift-tools-version: 6.0
//
// dpm: a data-protection server for virtual machines and the applications inside them.
//
// No Swift package dependencies: only the toolchain, Foundation, Glibc and Debian's C
// libraries (SQLite, OpenSSL libcrypto, zstd, libcurl) through `systemLibrary` targets.
//
// Plugins are dynamic-library products. Each links `PluginAPI` (never `Host`) and is
// linked with `-Bsymbolic`, so a plugin binds its own copy of the PluginAPI symbols even
// when the `dpm` executable exports symbols of the same name.
import PackageDescription

let pluginLinkerSettings: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "-Bsymbolic"])]

func plugin(_ name: String, extraDependencies: [Target.Dependency] = []) -> Target {
    .target(
        name: name,
        dependencies: ["PluginAPI"] + extraDependencies,
        path: "Sources/Plugins/\(name)",
        linkerSettings: pluginLinkerSettings
    )
}

let package = Package(
    name: "dpm",
    products: [
        .executable(name: "dpm", targets: ["dpm"]),
        .library(name: "HyperVHost", type: .dynamic, targets: ["HyperVHost"]),
        .library(name: "GuestApp", type: .dynamic, targets: ["GuestApp"]),
        .library(name: "TapeLibrary", type: .dynamic, targets: ["TapeLibrary"]),
        .library(name: "OnlineTier", type: .dynamic, targets: ["OnlineTier"]),
    ],
    targets: [
        // The stable C ABI: include/dpm_plugin.h is the whole contract.
        .target(name: "DPMPluginABI", path: "Sources/PluginAPI/C"),
        // The thin Swift layer over the ABI, for plugins written in Swift.
        .target(name: "PluginAPI", dependencies: ["DPMPluginABI"], path: "Sources/PluginAPI/Swift"),

        .systemLibrary(name: "CSQLite", path: "Sources/System/CSQLite"),
        .systemLibrary(name: "CZstd", path: "Sources/System/CZstd"),
        .systemLibrary(name: "CCrypto", path: "Sources/System/CCrypto"),
        .systemLibrary(name: "CLinux", path: "Sources/System/CLinux"),
        // The Linux st (mtio) ioctls and structs, and flock, for TapeLibrary.
        .systemLibrary(name: "CTape", path: "Sources/System/CTape"),
        .systemLibrary(name: "CSSL", path: "Sources/System/CSSL"),
        // libcurl (libcurl4-openssl-dev): the OnlineTier plugin's HTTP transport.
        .systemLibrary(name: "CCurl", path: "Sources/System/CCurl"),

        // Chunk digests: the one type the store and remote agents both name chunks with.
        .target(name: "Digests", path: "Sources/Digests"),

        // POSIX pax archives (what GNU tar reads): long-term copies and tape files.
        .target(name: "PaxArchive", path: "Sources/PaxArchive"),

        .target(name: "Host", dependencies: ["PluginAPI", "PaxArchive", "Digests", "CSQLite", "CZstd", "CCrypto", "CLinux"]),

        // The secure channel between the server and its remote agents (guest agent, host agent):
        // mutual TLS 1.3 with pinned keys, enrollment codes, frames, keep-alives and chunk
        // negotiation. Agents link it without the store, so it never depends on Host.
        .target(name: "AgentChannel", dependencies: ["Digests", "CSSL", "CCrypto"]),

        plugin("HyperVHost", extraDependencies: ["CLinux"]),
        plugin("GuestApp"),
        // TapeLibrary's code is in TapeLibraryCore so that its tests can link it without the
        // plugin's exported entry symbol (which HyperVHost's tests already bring).
        .target(name: "TapeLibraryCore", dependencies: ["PluginAPI", "CTape"], path: "Sources/Plugins/TapeLibrary", exclude: ["Entry"]),
        .target(name: "TapeLibrary", dependencies: ["PluginAPI", "TapeLibraryCore"], path: "Sources/Plugins/TapeLibrary/Entry",
                linkerSettings: pluginLinkerSettings),
        plugin("OnlineTier", extraDependencies: ["CCurl", "CCrypto"]),

        .executableTarget(name: "dpm", dependencies: ["Host"]),
        // Reads a recovery point from the store's files alone, without the catalog: proof that
        // the on-disk format is self-describing. Deliberately independent of Host.
        .executableTarget(name: "dpm-restore-standalone", dependencies: ["CZstd", "CCrypto"],
                          path: "Sources/StandaloneReader"),

        // Paths, tools and subprocess helpers shared by every test target.
        .target(name: "TestSupport", path: "Tests/Support"),
        .testTarget(name: "PaxArchiveTests", dependencies: ["PaxArchive", "TestSupport"]),
        // A remote agent in its own process, for the channel tests that cross a process boundary.
        .executableTarget(name: "agent-channel-peer", dependencies: ["AgentChannel"], path: "Tests/AgentChannelPeer"),
        .testTarget(name: "AgentChannelTests", dependencies: ["AgentChannel", "TestSupport"]),
        .testTarget(name: "HostTests", dependencies: ["Host", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "HyperVHostTests", dependencies: ["HyperVHost", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TapeLibraryTests", dependencies: ["TapeLibraryCore", "TestSupport"], exclude: ["Fixtures"]),
        // The S3 client of the online tier: SigV4 vectors, and real SeaweedFS and moto servers.
        // Every plugin target exports `dpm_plugin_entry`, and the one test bundle links two of
        // them (HyperVHost, OnlineTier); no test calls that symbol, so either copy may win.
        .testTarget(name: "OnlineTierTests", dependencies: ["OnlineTier", "TestSupport"],
                    linkerSettings: [.unsafeFlags(["-Xlinker", "--allow-multiple-definition"])]),
        // Drives the built `dpm` binary and plugin libraries against real tools.
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
