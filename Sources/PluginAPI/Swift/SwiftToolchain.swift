import DPMPluginABI

/// The Swift toolchain stamp a plugin reports in `dpm_plugin_api.swift_toolchain`.
///
/// Swift's runtime libraries carry no version in their file names, so a plugin built by
/// another toolchain would otherwise run silently against this process's runtime. The stamp
/// combines the Swift language version the compiler reports with the version of the clang
/// built into the same toolchain, which names the exact llvm-project commit.
public enum SwiftToolchain {
    public static var stamp: String {
        "swift-\(swiftVersion); clang \(String(cString: dpm_toolchain_clang_version()))"
    }

    /// The compiler's Swift version, to the patch level for the versions dpm knows.
    static var swiftVersion: String {
        #if compiler(>=7.0)
        return "7+"
        #elseif compiler(>=6.3.2)
        return "6.3.2+"
        #elseif compiler(>=6.3.1)
        return "6.3.1"
        #elseif compiler(>=6.3)
        return "6.3.0"
        #elseif compiler(>=6.2)
        return "6.2"
        #else
        return "older-than-6.2"
        #endif
    }
}
