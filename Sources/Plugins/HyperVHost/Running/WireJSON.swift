import Foundation
import PluginAPI

/// JSON as QEMU and the guest agent speak it: keys exactly as written (QMP uses
/// "node-name" and "backing_file_depth" side by side), unlike `JSONCoding`, which converts
/// keys to and from snake_case for the plugin ABI.
enum WireJSON {
    static func encode(_ value: JSONValue) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(value))
    }

    /// Decodes one message; nil when the bytes are not JSON.
    static func decode(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// A whole number from a JSON value, refusing fractions, negatives and values beyond 2^53
    /// (the exact range of a Double), so that sizes from a peer never trap a conversion.
    static func uint64(_ value: JSONValue?) -> UInt64? {
        guard let number = value?.numberValue, number >= 0, number <= 9_007_199_254_740_992, number == number.rounded() else { return nil }
        return UInt64(number)
    }

    /// A small integer (counts, version parts) from a peer, clamped so that no value traps.
    static func int(_ value: JSONValue?) -> Int {
        guard let number = value?.numberValue, number.isFinite else { return 0 }
        return Int(max(-1_000_000_000, min(1_000_000_000, number.rounded())))
    }

    static func number(_ value: UInt64) -> JSONValue { .number(Double(value)) }
}
