import Foundation

/// What came back for one request: the final status line's code, its headers (names in
/// lower case), and the body unless a sink took it.
struct HTTPResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: Data

    func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name == lowered }?.value
    }

    var isSuccess: Bool { (200..<300).contains(status) }
}
