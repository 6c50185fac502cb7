import Foundation
import PluginAPI

/// The one error type of the Host module: a code, a message that names the object and the
/// fix, and the underlying cause when there is one.
public struct HostError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The command line is wrong; exit code 2.
        case usage
        case notFound = "not-found"
        case invalid
        case corrupt
        case io
        case busy
        case noSpace = "no-space"
        case cancelled
        case planned
        case unsupported
        case transient
        case abiMismatch = "abi-mismatch"
        case internalError = "internal"
        /// An object is locked by its retention; deleting it must wait.
        case locked
    }

    public var code: Code
    public var message: String
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: Error? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String {
        if let cause, !message.contains(cause) { return "\(message) (\(cause))" }
        return message
    }

    /// 2 for usage errors, 1 for every other failure.
    public var exitCode: Int32 { code == .usage ? 2 : 1 }

    /// Maps a provider's `dpm_status` onto a host code.
    public static func code(forStatus status: Int32) -> Code {
        switch PluginError.Code(rawValue: status) {
        case .transient: return .transient
        case .notFound: return .notFound
        case .unsupported: return .unsupported
        case .corrupt: return .corrupt
        case .cancelled: return .cancelled
        case .abiMismatch: return .abiMismatch
        case .invalid: return .invalid
        case .io: return .io
        case .planned: return .planned
        case .noSpace: return .noSpace
        case .locked: return .locked
        case .internalError, .none: return .internalError
        }
    }

    /// Wraps an errno from a system call on `path`.
    public static func posix(_ what: String, path: String, errno code: Int32 = errno) -> HostError {
        let reason = String(cString: strerror(code))
        let kind: Code = code == ENOSPC ? .noSpace : (code == ENOENT ? .notFound : .io)
        return HostError(kind, "\(what) \(path): \(reason)")
    }
}
