import Foundation

/// One HTTP request as it goes on the wire: what the signer signs and the transport sends.
///
/// `path` is already URI-encoded (see `URIEncoding.encodePath`) and is sent byte for byte,
/// never normalised. `query` holds raw names and values; the wire query string and the
/// canonical query of the signature are both `canonicalQuery`, so they cannot disagree.
/// `headers` keep their order and may repeat a name. Content-Length is not a header here:
/// the transport sends it from the body's length.
struct HTTPRequest {
    var method: String
    /// `http` or `https`.
    var scheme: String
    /// The host name or address to connect to (no port).
    var host: String
    var port: Int
    var path: String
    var query: [(name: String, value: String)] = []
    var headers: [(name: String, value: String)] = []
    var body: RequestBody = .empty

    /// The `Host` header value: the port is left out when it is the scheme's default.
    var hostHeader: String {
        let defaultPort = scheme == "https" ? 443 : 80
        let name = host.contains(":") ? "[\(host)]" : host
        return port == defaultPort ? name : "\(name):\(port)"
    }

    /// Names and values URI-encoded, sorted by name then value, joined with `&`; a name
    /// without a value becomes `name=`.
    var canonicalQuery: String {
        query.map { (URIEncoding.encode($0.name), URIEncoding.encode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    var url: String {
        let query = canonicalQuery
        return "\(scheme)://\(hostHeader)\(path)" + (query.isEmpty ? "" : "?" + query)
    }

    /// The value of the first header with this name (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.name.caseInsensitiveCompare(name) == .orderedSame }
        headers.append((name, value))
    }
}

/// The body of a request. Every kind can be read again from the start, which retries need.
enum RequestBody {
    case empty
    case bytes([UInt8])
    case data(Data)
    /// `length` bytes of the file at `path` from `offset`, read as the request is sent.
    case file(path: String, offset: UInt64, length: UInt64)

    var length: UInt64 {
        switch self {
        case .empty: return 0
        case .bytes(let bytes): return UInt64(bytes.count)
        case .data(let data): return UInt64(data.count)
        case .file(_, _, let length): return length
        }
    }
}
