import CCurl
import Foundation

/// Receives the body of a successful reply piece by piece, with the reply's headers.
typealias ResponseSink = (UnsafeRawBufferPointer, [(name: String, value: String)]) throws -> Void

/// Sends single HTTP requests with libcurl. The only file of the plugin that touches libcurl.
///
/// Why libcurl and not URLSession: FoundationNetworking on Linux is itself a layer over
/// libcurl, but it offers no per-client CA file (swift-corelibs-foundation reads one only from
/// an environment variable, and only on Android), no server-trust delegate on Linux, and no
/// control over body streaming. libcurl gives all of it per handle: `CURLOPT_CAINFO`,
/// connect and total timeouts, a stall limit, `CURLOPT_PATH_AS_IS` (paths are never
/// normalised, which SigV4 requires), read and write callbacks for streaming, and no retries
/// of its own: every retry is the client's, visible and bounded.
///
/// Thread-safe: each request takes its own easy handle from a pool of idle handles, and a
/// handle keeps its connections alive for the next request that takes it.
final class CurlTransport {
    struct Options {
        /// A PEM file of CA certificates that replaces the system store for HTTPS.
        var caFile: String?
        var connectTimeout: TimeInterval = 10
        /// The most one attempt of one request may take, from connecting to the last byte.
        var requestTimeout: TimeInterval = 300
        /// An attempt that moves less than one byte a second for this long is abandoned.
        var stallTimeout: TimeInterval = 60
        /// libcurl `--resolve` entries, `HOST:PORT:ADDRESS`: connect to ADDRESS for HOST:PORT
        /// without asking DNS (virtual-hosted buckets on a private endpoint).
        var resolve: [String] = []
        /// How many idle handles (and so kept-alive connections) to keep.
        var idleHandles = 16
        var userAgent = "dpm-online-tier"
    }

    /// Bodies of error replies are kept up to this size; S3's are a few hundred bytes.
    private static let errorBodyLimit = 1 << 20

    private let options: Options
    private let lock = NSLock()
    private var idle: [UnsafeMutableRawPointer] = []

    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

    init(options: Options) throws {
        guard Self.globalInit == CURLE_OK else {
            throw S3Error.local("libcurl failed to initialise (\(Self.globalInit.rawValue))", code: "InternalError")
        }
        if let caFile = options.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            var error = S3Error(origin: .transport, code: "TLSCAFileUnreadable")
            error.detail = "\(caFile) is missing or unreadable"
            throw error
        }
        for entry in options.resolve + [options.userAgent] + (options.caFile.map { [$0] } ?? [])
            where entry.contains("\n") || entry.contains("\r") || entry.contains("\0") {
            throw S3Error.local("a transport setting contains a line break: \(entry.debugDescription)", code: "InvalidArgument")
        }
        self.options = options
    }

    deinit {
        for handle in idle { curl_easy_cleanup(handle) }
    }

    /// Sends `request` once.
    /// - Parameters:
    ///   - body: the reader of the body, sending `bodyLength` bytes (ignored for GET, HEAD, DELETE).
    ///   - sink: receives the body of a 2xx reply as it arrives, with the reply's headers
    ///     (names in lower case); nil collects it into the response. Error replies are always
    ///     collected, so they can be parsed.
    /// - Returns: the reply, whatever its status.
    /// - Throws: `S3Error` with origin `.transport` when no complete reply arrived, or the
    ///   error `body` or `sink` threw.
    func send(_ request: HTTPRequest, body: BodyReader?, bodyLength: UInt64,
              sink: ResponseSink?) throws -> HTTPResponse {
        for (name, value) in request.headers where !Self.isSafeHeader(name, value) {
            throw S3Error.local("header \(name.debugDescription) has a character HTTP does not allow in it", code: "InvalidArgument")
        }
        guard bodyLength <= UInt64(Int64.max) else {
            throw S3Error.local("a body of \(bodyLength) bytes is too large to send", code: "InvalidArgument")
        }
        let handle = try takeHandle()
        var healthy = true
        defer { giveBack(handle, healthy: healthy) }

        let state = TransferState(handle: handle, reader: body, sink: sink)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        // No `Expect: 100-continue` pause before bodies; curl's POST default content type
        // would otherwise reach the object when a POST names none.
        headerList = curl_slist_append(headerList, "Expect:")
        if request.method == "POST" && request.header("content-type") == nil {
            headerList = curl_slist_append(headerList, "Content-Type:")
        }

        var setupFailed = false
        func check(_ code: CURLcode) { if code != CURLE_OK { setupFailed = true } }
        check(dpm_curl_set_string(handle, CURLOPT_URL, request.url))
        check(dpm_curl_set_long(handle, CURLOPT_PATH_AS_IS, 1))
        check(dpm_curl_set_long(handle, CURLOPT_NOSIGNAL, 1))
        check(dpm_curl_set_long(handle, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1))
        check(dpm_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        check(dpm_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(options.connectTimeout)))
        check(dpm_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(options.requestTimeout)))
        check(dpm_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1))
        check(dpm_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, Int(options.stallTimeout.rounded(.up)))))
        check(dpm_curl_set_string(handle, CURLOPT_USERAGENT, options.userAgent))
        if let caFile = options.caFile { check(dpm_curl_set_string(handle, CURLOPT_CAINFO, caFile)) }
        check(dpm_curl_set_list(handle, CURLOPT_HTTPHEADER, headerList))
        var resolveList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(resolveList) }
        if !options.resolve.isEmpty {
            for entry in options.resolve { resolveList = curl_slist_append(resolveList, entry) }
            check(dpm_curl_set_list(handle, CURLOPT_RESOLVE, resolveList))
        }
        check(dpm_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, state.errorBuffer))

        let context = Unmanaged.passUnretained(state).toOpaque()
        check(dpm_curl_set_data_callback(handle, CURLOPT_WRITEFUNCTION, transferWrite))
        check(dpm_curl_set_pointer(handle, CURLOPT_WRITEDATA, context))
        check(dpm_curl_set_data_callback(handle, CURLOPT_HEADERFUNCTION, transferHeader))
        check(dpm_curl_set_pointer(handle, CURLOPT_HEADERDATA, context))
        switch request.method {
        case "GET":
            check(dpm_curl_set_long(handle, CURLOPT_HTTPGET, 1))
        case "HEAD":
            check(dpm_curl_set_long(handle, CURLOPT_NOBODY, 1))
        case "PUT":
            check(dpm_curl_set_long(handle, CURLOPT_UPLOAD, 1))
            // Larger reads from the body than curl's 64 KiB default: fewer callbacks per part.
            check(dpm_curl_set_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 1 << 20))
            check(dpm_curl_set_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(bodyLength)))
            check(dpm_curl_set_data_callback(handle, CURLOPT_READFUNCTION, transferRead))
            check(dpm_curl_set_pointer(handle, CURLOPT_READDATA, context))
        case "POST":
            check(dpm_curl_set_long(handle, CURLOPT_POST, 1))
            check(dpm_curl_set_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bodyLength)))
            check(dpm_curl_set_data_callback(handle, CURLOPT_READFUNCTION, transferRead))
            check(dpm_curl_set_pointer(handle, CURLOPT_READDATA, context))
        default:
            check(dpm_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, request.method))
        }
        guard !setupFailed else {
            healthy = false
            throw S3Error.local("libcurl refused the options of \(request.method) \(request.url)", code: "InternalError")
        }

        let code = withExtendedLifetime(state) { curl_easy_perform(handle) }
        if let error = state.callbackError {
            healthy = false
            throw error
        }
        guard code == CURLE_OK else {
            healthy = false
            throw Self.transportError(code, detail: state.errorText)
        }
        var status = 0
        _ = dpm_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: state.headers, body: state.body)
    }

    private func takeHandle() throws -> UnsafeMutableRawPointer {
        lock.lock()
        if let handle = idle.popLast() {
            lock.unlock()
            return handle
        }
        lock.unlock()
        guard let handle = curl_easy_init() else {
            throw S3Error.local("libcurl could not create a handle (out of memory?)", code: "InternalError")
        }
        return handle
    }

    /// Returns a handle to the pool, cleared of this request's options but keeping its
    /// connections; a handle whose transfer failed is closed instead.
    private func giveBack(_ handle: UnsafeMutableRawPointer, healthy: Bool) {
        curl_easy_reset(handle)
        lock.lock()
        if healthy && idle.count < options.idleHandles {
            idle.append(handle)
            lock.unlock()
        } else {
            lock.unlock()
            curl_easy_cleanup(handle)
        }
    }

    private static func milliseconds(_ seconds: TimeInterval) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int(min(seconds * 1000, Double(Int32.max)))
    }

    /// Header names are tokens; values may hold any visible character but no line break.
    private static func isSafeHeader(_ name: String, _ value: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }
            && !value.utf8.contains { $0 == 10 || $0 == 13 || $0 == 0 }
    }

    private static func transportError(_ code: CURLcode, detail: String) -> S3Error {
        let name: String
        switch code {
        case CURLE_COULDNT_CONNECT: name = "ConnectionFailed"
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: name = "NameResolutionFailed"
        case CURLE_OPERATION_TIMEDOUT: name = "Timeout"
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            name = "ConnectionLost"
        case CURLE_PEER_FAILED_VERIFICATION: name = "TLSVerificationFailed"
        case CURLE_SSL_CACERT_BADFILE: name = "TLSCAFileUnreadable"
        case CURLE_SSL_CONNECT_ERROR: name = "TLSHandshakeFailed"
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: name = "InvalidArgument"
        default: name = "TransportFailed"
        }
        var error = S3Error(origin: .transport, code: name)
        let words = String(cString: curl_easy_strerror(code))
        error.detail = detail.isEmpty ? words : "\(words): \(detail)"
        return error
    }
}

/// The state of one transfer, reached from libcurl's callbacks through their context pointer.
private final class TransferState {
    let handle: UnsafeMutableRawPointer
    let reader: BodyReader?
    let sink: ResponseSink?
    var headers: [(name: String, value: String)] = []
    var body = Data()
    var callbackError: Error?
    var status = 0
    let errorBuffer: UnsafeMutablePointer<CChar>

    init(handle: UnsafeMutableRawPointer, reader: BodyReader?, sink: ResponseSink?) {
        self.handle = handle
        self.reader = reader
        self.sink = sink
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit { errorBuffer.deallocate() }

    var errorText: String { String(cString: errorBuffer).trimmingCharacters(in: .whitespacesAndNewlines) }

    func receive(_ bytes: UnsafeRawBufferPointer) -> Int {
        if status == 0 { _ = dpm_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status) }
        if (200..<300).contains(status), let sink {
            do {
                try sink(bytes, headers)
            } catch {
                callbackError = error
                return 0
            }
        } else if (200..<300).contains(status) || body.count < 1 << 20 {
            body.append(contentsOf: bytes)
        }
        return bytes.count
    }

    func send(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let reader else { return 0 }
        do {
            return try reader.read(into: buffer)
        } catch {
            callbackError = error
            return dpm_curl_read_abort
        }
    }

    /// One header line; a status line starts a new reply (after `100 Continue`, say).
    func header(_ line: UnsafeRawBufferPointer) {
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("HTTP/") {
            headers = []
            status = 0
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        headers.append((text[..<colon].lowercased(), text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
}

private func transferWrite(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                           _ context: UnsafeMutableRawPointer?) -> Int {
    guard let buffer, let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    return state.receive(UnsafeRawBufferPointer(start: buffer, count: size * count))
}

private func transferRead(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                          _ context: UnsafeMutableRawPointer?) -> Int {
    guard let buffer, let context else { return dpm_curl_read_abort }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    return state.send(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

private func transferHeader(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                            _ context: UnsafeMutableRawPointer?) -> Int {
    guard let buffer, let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    state.header(UnsafeRawBufferPointer(start: buffer, count: size * count))
    return size * count
}
