/// An error that ends the program: a message for standard error and the exit status
/// (1 for damage or anything else that went wrong, 2 for a bad command line).
struct Failure: Error {
    let message: String
    let status: Int32

    /// Damage, a missing file or a refused key: exit status 1.
    static func damage(_ message: String) -> Failure { Failure(message: message, status: 1) }

    /// A bad command line: exit status 2.
    static func usage(_ message: String) -> Failure { Failure(message: message, status: 2) }
}
