import Foundation
import PluginAPI

/// The images being opened along one differencing chain, child first, for loop and depth checks.
struct OpenContext {
    /// Canonical paths of the images opened so far (the top image first).
    var chain: [String] = []

    /// The context for opening the parent of the image at `canonicalPath`.
    func adding(_ canonicalPath: String) -> OpenContext {
        OpenContext(chain: chain + [canonicalPath])
    }
}

enum DiskImageOpener {
    /// Opens `path`, probing the format from its content when `format` is nil (VHDX signature "vhdxfile",
    /// qcow2 "QFI\xfb", VHD "conectix" footer at the end (and the copy at offset 0 for dynamic disks), else raw).
    /// Differencing VHDX/VHD open their parents (resolved relative to the child's directory, then absolute).
    static func open(path: String, format: DiskFormat? = nil) throws -> DiskImage {
        try open(path: path, format: format, context: OpenContext())
    }

    /// Opens one image of a chain; `context` lists the images already open above it.
    static func open(path: String, format: DiskFormat?, context: OpenContext) throws -> DiskImage {
        let file = try FileReader(path: path)
        let inner = context.adding(ParentPathResolver.canonical(path))
        let resolved = try format ?? DiskFormat.probe(file)
        switch resolved {
        case .vhdx: return try VHDXImage(file: file, context: inner)
        case .vhd: return try VHDImage(file: file, context: inner)
        case .qcow2: return try QCOW2Image(file: file, context: inner)
        case .raw: return RawImage(file: file)
        }
    }

    /// Opens the parent of a differencing image.
    ///
    /// - Parameters:
    ///   - childPath: the image naming the parent, for messages and relative resolution.
    ///   - childFormat: the child's format; the parent must be one of its allowed parent formats.
    ///   - relative: relative paths recorded in the child, tried first.
    ///   - absolute: absolute paths recorded in the child, tried next.
    ///   - format: the parent's format when the child records it (qcow2), else probed.
    ///   - description: how the child names the parent, for the "not found" message.
    static func openParent(childPath: String, childFormat: DiskFormat, relative: [String], absolute: [String],
                           format: DiskFormat? = nil, description: String,
                           context: OpenContext) throws -> DiskImage {
        let candidates = ParentPathResolver.candidates(relative: relative, absolute: absolute, childPath: childPath)
        guard let found = ParentPathResolver.firstExisting(candidates) else {
            let shown = candidates.first ?? "(no path recorded)"
            throw DiskError.notFound(childPath, "parent \(shown) not found (\(description))")
        }
        let canonical = ParentPathResolver.canonical(found)
        if context.chain.contains(canonical) {
            throw DiskError.corrupt(childPath, "parent chain loops back to \(canonical)")
        }
        if context.chain.count >= DiskLimits.maxChainDepth {
            throw DiskError.unsupported(childPath, "parent chain is deeper than \(DiskLimits.maxChainDepth) images")
        }
        let parentFile = try FileReader(path: found)
        let parentFormat = try format ?? DiskFormat.probe(parentFile)
        guard childFormat.allowedParentFormats.contains(parentFormat) else {
            throw DiskError.corrupt(childPath, "parent \(found) is a \(parentFormat.displayName) file; a \(childFormat.displayName) differencing disk needs a \(childFormat.displayName) parent")
        }
        return try open(path: found, format: parentFormat, context: context)
    }
}

/// Finds the file a differencing disk names as its parent.
///
/// Differencing VHDX and VHD files record their parent as Windows paths: a relative path such as
/// `.\base.vhdx` or `..\images\base.vhdx` (VHDX `relative_path`, VHD `W2ru`), and an absolute
/// one such as `C:\VMs\base.vhdx` (VHDX `absolute_win32_path`, VHD `W2ku`). qcow2 records a POSIX
/// path, relative to the image's directory when not absolute.
///
/// Resolution order: each relative path against the child's directory, then each absolute path
/// as written (a POSIX path works directly; a drive-letter path can only work if such a file
/// exists, which on Linux it normally does not). The first candidate that exists wins.
enum ParentPathResolver {
    /// Converts a Windows path to forward slashes and strips the `\\?\` long-path prefix.
    static func normalized(_ windowsPath: String) -> String {
        var path = windowsPath.replacingOccurrences(of: "\\", with: "/")
        if path.hasPrefix("//?/") { path.removeFirst(4) }
        return path
    }

    /// True for `C:\…`, `C:/…`, `\\server\…` and POSIX absolute paths.
    static func isAbsolute(_ path: String) -> Bool {
        let normalizedPath = normalized(path)
        if normalizedPath.hasPrefix("/") { return true }
        let characters = Array(normalizedPath)
        return characters.count >= 2 && characters[1] == ":" && characters[0].isLetter
    }

    /// The directory holding `childPath`.
    static func directory(of childPath: String) -> String {
        let url = URL(fileURLWithPath: childPath)
        return url.deletingLastPathComponent().path
    }

    /// `relative` resolved against the child's directory, with `.` and `..` removed.
    static func resolve(relative: String, childPath: String) -> String {
        let path = normalized(relative)
        if path.hasPrefix("/") { return URL(fileURLWithPath: path).standardizedFileURL.path }
        let base = URL(fileURLWithPath: directory(of: childPath), isDirectory: true)
        return URL(fileURLWithPath: path, relativeTo: base).standardizedFileURL.path
    }

    /// Candidate host paths, in the order they are tried.
    static func candidates(relative: [String], absolute: [String], childPath: String) -> [String] {
        var result: [String] = []
        for path in relative where !path.isEmpty {
            let candidate = isAbsolute(path) ? normalized(path) : resolve(relative: path, childPath: childPath)
            if !result.contains(candidate) { result.append(candidate) }
        }
        for path in absolute where !path.isEmpty {
            let candidate = normalized(path)
            if !result.contains(candidate) { result.append(candidate) }
        }
        return result
    }

    /// The first candidate that exists as a file, or nil.
    static func firstExisting(_ candidates: [String]) -> String? {
        var isDirectory: ObjCBool = false
        for candidate in candidates {
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        return nil
    }

    /// The canonical form of an existing path (symbolic links resolved), for loop detection.
    static func canonical(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
    }
}
