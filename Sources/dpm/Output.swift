import Foundation
import Host
import PluginAPI

/// Everything the CLI prints: human text, or JSON with `--json`.
struct Output {
    let json: Bool
    /// Progress bars only when standard error is a terminal and the output is for humans.
    var showsProgress: Bool { !json && isatty(STDERR_FILENO) == 1 }

    func line(_ text: String = "") {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    func emit<T: Encodable>(_ value: T) throws {
        line(String(decoding: try JSONCoding.encode(value, pretty: true), as: UTF8.self))
    }

    /// Prints rows as aligned columns.
    func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func format(_ row: [String]) -> String {
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        line(format(header))
        for row in rows { line(format(row)) }
    }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("dpm: error: \(message)\n".utf8))
    }
}
