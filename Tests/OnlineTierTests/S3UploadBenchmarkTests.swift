import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// Single-client upload throughput to a local SeaweedFS: this client next to `aws s3 cp` and
/// boto3 on the same 512 MiB file, medians of three runs each. Prints figures; asserts only
/// that the data arrived. Skipped unless DPM_S3_BENCH=1; meant for a release build:
///
///     swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path .build-s3bench
///     DPM_S3_BENCH=1 swift test -c release --skip-build --scratch-path .build-s3bench --filter S3UploadBenchmarkTests
final class S3UploadBenchmarkTests: XCTestCase {
    func testUploadThroughput() throws {
        guard ProcessInfo.processInfo.environment["DPM_S3_BENCH"] == "1" else {
            throw XCTSkip("benchmark: set DPM_S3_BENCH=1 (and use a release build)")
        }
        try TestSupport.require("aws")
        let server = try TestS3Server.start(.seaweedFS, for: self)
        let scratch = try TestSupport.temporaryDirectory(self)
        let size = 512 << 20
        let file = scratch + "/payload.bin"
        try Data(TestData.random(size, seed: 42)).write(to: URL(fileURLWithPath: file))
        _ = try Data(contentsOf: URL(fileURLWithPath: file))  // warm the page cache
        let bucket = BucketName.fresh("bench")
        try server.client().createBucket(bucket)
        let environment = ["AWS_ACCESS_KEY_ID": server.accessKey, "AWS_SECRET_ACCESS_KEY": server.secretKey,
                           "AWS_DEFAULT_REGION": server.region]
        var lines: [String] = []

        func measure(_ name: String, _ body: (Int) throws -> Void) rethrows {
            var seconds: [Double] = []
            for run in 0..<3 {
                let start = Date()
                try body(run)
                seconds.append(Date().timeIntervalSince(start))
            }
            let median = seconds.sorted()[1]
            lines.append(name.padding(toLength: 56, withPad: " ", startingAt: 0)
                         + String(format: "%7.1f MB/s  (median %.2f s; runs ", Double(size) / median / 1e6, median)
                         + seconds.map { String(format: "%.2f", $0) }.joined(separator: ", ") + ")")
        }

        let client = try server.client { $0.maxConcurrentRequests = 16 }
        let body = RequestBody.file(path: file, offset: 0, length: UInt64(size))
        for concurrency in [1, 4, 8] {
            try measure("dpm upload, 16 MiB parts, \(concurrency) at a time") { run in
                _ = try client.upload(bucket: bucket, key: "dpm-\(concurrency)-\(run)", body: body, partSize: 16 << 20, concurrency: concurrency)
            }
        }
        let chunks = size / (4 << 20)
        for concurrency in [1, 8] {
            try measure("dpm 4 MiB objects (tier chunks), \(concurrency) at a time") { run in
                _ = try client.concurrently(chunks, limit: concurrency) { index in
                    try client.putObject(bucket: bucket, key: "chunks-\(concurrency)-\(run)/\(index)",
                                         body: body.slice(offset: UInt64(index) << 22, length: 4 << 20))
                }
            }
        }
        let streaming = try server.client { $0.payloadSigning = .streaming(chunkSize: 1 << 20) }
        try measure("dpm upload, streaming signatures, 8 at a time") { run in
            _ = try streaming.upload(bucket: bucket, key: "stream-\(run)", body: body, partSize: 16 << 20, concurrency: 8)
        }
        try measure("aws s3 cp (awscli, 8 MiB parts, 10 at a time)") { run in
            let result = try runProcess(["aws", "--endpoint-url", server.endpoint, "s3", "cp", "--only-show-errors", file,
                                         "s3://\(bucket)/aws-\(run)"], environment: environment)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        let script = """
            import boto3, sys
            from boto3.s3.transfer import TransferConfig
            s3 = boto3.client("s3", endpoint_url=sys.argv[1])
            s3.upload_file(sys.argv[2], sys.argv[3], sys.argv[4], Config=TransferConfig(multipart_chunksize=16 << 20, max_concurrency=8))
            """
        try measure("boto3 upload_file (16 MiB parts, 8 at a time)") { run in
            let result = try runProcess(["python3", "-c", script, server.endpoint, file, bucket, "boto3-\(run)"], environment: environment)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        let verify = try client.getObject(bucket: bucket, key: "dpm-8-0", range: UInt64(size - 100)..<UInt64(size))
        XCTAssertEqual(Array(verify.bytes), Array(try Data(contentsOf: URL(fileURLWithPath: file)).suffix(100)))
        XCTAssertEqual(try client.headObject(bucket: bucket, key: "aws-0").size, UInt64(size))
        print("S3 upload throughput to SeaweedFS (weed mini, loopback), 512 MiB:\n" + lines.joined(separator: "\n"))
    }
}
