@testable import AgentChannel
import Foundation
import XCTest

/// Work running on its own thread, whose result a test waits for with a bound: a test that
/// would otherwise hang fails instead, naming what did not finish.
final class Background<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<Value, Error>?
    let what: String

    init(_ what: String, _ body: @escaping () throws -> Value) {
        self.what = what
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    /// The outcome; throws when it did not finish within `timeout` seconds.
    func wait(timeout: TimeInterval = 60) throws -> Result<Value, Error> {
        guard done.wait(timeout: .now() + timeout) == .success, let result else {
            XCTFail("\(what) did not finish within \(timeout) s")
            throw NSError(domain: "Background", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(what) hung"])
        }
        done.signal()  // later waits return at once
        return result
    }

    func value(timeout: TimeInterval = 60) throws -> Value {
        try wait(timeout: timeout).get()
    }
}

/// The ChannelError a result failed with, or a test failure.
func channelError<T>(_ result: Result<T, Error>, file: StaticString = #filePath, line: UInt = #line) -> ChannelError? {
    switch result {
    case .success:
        XCTFail("expected a refusal, but it succeeded", file: file, line: line)
        return nil
    case let .failure(error):
        guard let channel = error as? ChannelError else {
            XCTFail("expected a ChannelError, got \(error)", file: file, line: line)
            return nil
        }
        return channel
    }
}

/// Waits (bounded) until `condition` holds; false when it never did.
func eventually(within timeout: TimeInterval = 30, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
