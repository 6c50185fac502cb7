import Foundation
import PluginAPI

/// Typed access to a command's JSON `args`, with errors naming the verb and the argument.
struct CommandArguments {
    let verb: String
    let values: [String: JSONValue]

    init(_ request: CommandRequest) {
        verb = request.verb
        if case .object(let object) = request.args ?? .null { values = object } else { values = [:] }
    }

    func has(_ key: String) -> Bool { values[key] != nil && values[key] != .null }

    func string(_ key: String) throws -> String? {
        guard let value = values[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw invalid(key, "must be a string") }
        return text
    }

    func requiredString(_ key: String) throws -> String {
        guard let text = try string(key), !text.isEmpty else { throw invalid(key, "is required") }
        return text
    }

    func int(_ key: String) throws -> Int? {
        guard let value = values[key], value != .null else { return nil }
        if let number = value.numberValue, let integer = Int(exactly: number) { return integer }
        if let text = value.stringValue, let integer = Int(text) { return integer }
        throw invalid(key, "must be a whole number")
    }

    func requiredInt(_ key: String) throws -> Int {
        guard let value = try int(key) else { throw invalid(key, "is required") }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = values[key], value != .null else { return nil }
        if let flag = value.boolValue { return flag }
        if let text = value.stringValue { if text == "true" { return true }; if text == "false" { return false } }
        throw invalid(key, "must be true or false")
    }

    /// A size in bytes: a number, or text such as "64M", "2GiB", "1T" (binary units).
    func size(_ key: String) throws -> UInt64? {
        guard let value = values[key], value != .null else { return nil }
        if let number = value.numberValue, number >= 0, let bytes = UInt64(exactly: number) { return bytes }
        guard let text = value.stringValue?.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "") else {
            throw invalid(key, "must be a size such as 64M")
        }
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let last = text.last, let unit = units[last], let amount = UInt64(text.dropLast()) { return amount * unit }
        if let bytes = UInt64(text) { return bytes }
        throw invalid(key, "'\(text)' is not a size such as 64M")
    }

    func strings(_ key: String) throws -> [String]? {
        guard let value = values[key], value != .null else { return nil }
        if let text = value.stringValue { return text.split(separator: ",").map(String.init) }
        guard let array = value.arrayValue, array.allSatisfy({ $0.stringValue != nil }) else { throw invalid(key, "must be a list of strings") }
        return array.compactMap(\.stringValue)
    }

    func invalid(_ key: String, _ problem: String) -> PluginError {
        PluginError(.invalid, "\(verb): argument '\(key)' \(problem)")
    }
}

/// JSON building for replies.
enum Reply {
    static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(value))
    }
}
