import DPMPluginABI

/// An error a provider reports to the host; `Code` mirrors `dpm_status` in dpm_plugin.h.
///
/// The message names the object and the fix, for example
/// "disk /vm/a.vhdx: both headers are damaged; restore the disk from a recovery point".
/// It crosses the C boundary as a status code plus text, never as a Swift error.
public struct PluginError: Error, CustomStringConvertible, Sendable {
    public enum Code: Int32, Sendable, CaseIterable {
        case transient = 1, notFound, unsupported, corrupt, cancelled, abiMismatch, invalid, io,
             planned, noSpace, internalError
        /// ABI 1.1: an object is locked (retention) and cannot be deleted yet.
        case locked
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The stable status name used in logs and JSON (`dpm_status_name`).
    public static func statusName(_ status: Int32) -> String {
        String(cString: dpm_status_name(status))
    }
}

extension PluginError {
    /// Throws the error a host callback reported through a status and an error buffer.
    static func check(_ status: Int32, _ err: [CChar]) throws {
        guard status != 0 else { return }
        throw PluginError(Code(rawValue: status) ?? .internalError, String(cString: err))
    }
}

/// Converts any thrown error into a status and a message, for the C boundary.
func statusAndMessage(of error: Error) -> (Int32, String) {
    if let error = error as? PluginError { return (error.code.rawValue, error.message) }
    return (PluginError.Code.internalError.rawValue, String(describing: error))
}
