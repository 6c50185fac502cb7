import Foundation

/// The one JSON dialect of the channel, on the wire and in its files: snake_case keys, sorted
/// for stable files, dates as ISO 8601 UTC strings ("2025-06-01T10:00:00Z").
enum WireJSON {
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        do {
            return [UInt8](try encoder.encode(value))
        } catch {
            throw ChannelError(.internalError, "cannot encode \(T.self) as JSON", cause: error)
        }
    }

    /// Decodes `bytes`; `what` names the frame or file in the error.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw ChannelError(.protocolViolation, "\(what) is not valid JSON of the expected shape", cause: error)
        }
    }
}
