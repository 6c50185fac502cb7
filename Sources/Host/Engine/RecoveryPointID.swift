import Foundation

/// Recovery point ids: the UTC time of the snapshot and four random hex digits, e.g.
/// `20261127-013502-3f9a`. They sort by time, read well, and are unique in practice.
public enum RecoveryPointID {
    public static func make(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: date) + "-" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    }

    /// A file-name-safe form of a data source id for `store/points/…`: letters, digits,
    /// '.', '_' and '-' pass; every other byte becomes %XX; a leading '.' is escaped too.
    public static func directoryName(forDataSource id: String) -> String {
        var out = ""
        for (position, byte) in id.utf8.enumerated() {
            let character = Character(Unicode.Scalar(byte))
            if byte < 0x80 && (character.isLetter || character.isNumber || character == "_" || character == "-" || (character == "." && position > 0)) {
                out.append(character)
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out.isEmpty ? "%" : out
    }
}
