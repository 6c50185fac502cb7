import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// Clients of a test server, and fresh bucket names.
extension TestS3Server {
    /// A client with the administrator's credentials (or others), quick to give up so a
    /// failing test fails fast.
    func client(accessKey: String? = nil, secretKey: String? = nil, endpoint: String? = nil,
                configure: (inout S3Configuration) -> Void = { _ in }) throws -> S3Client {
        var configuration = S3Configuration(endpoint: endpoint ?? self.endpoint,
                                            credentials: S3Credentials(accessKeyID: accessKey ?? self.accessKey,
                                                                       secretAccessKey: secretKey ?? self.secretKey),
                                            region: region)
        configuration.retry = RetryPolicy(maxAttempts: 3, baseDelay: 0.05, maxDelay: 0.5)
        configuration.requestTimeout = 60
        configure(&configuration)
        return try S3Client(configuration)
    }
}

enum BucketName {
    static func fresh(_ purpose: String) -> String {
        "\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// Asserts that `body` throws an `S3Error` with `code`, and returns it.
@discardableResult
func assertS3Error<T>(_ code: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) -> S3Error? {
    do {
        _ = try body()
        XCTFail("expected \(code), but the call succeeded", file: file, line: line)
    } catch let error as S3Error {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("expected S3Error \(code), got \(error)", file: file, line: line)
    }
    return nil
}
