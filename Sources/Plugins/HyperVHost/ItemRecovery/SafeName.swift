import Foundation

/// Turns a name found inside a guest file system into a name that is safe to create in the
/// recovery folder, so no guest name can write outside it.
///
/// Refused or rewritten (and reported): empty names, `.` and `..`, names with `/` or NUL,
/// Windows device names (CON, PRN, AUX, NUL, COM1–9, LPT1–9, with any extension), names
/// longer than 255 bytes (shortened, keeping a hash of the original so distinct names stay
/// distinct), and control characters.
enum SafeName {
    static let deviceNames: Set<String> = Set(["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
        + (1...9).map { "COM\($0)" } + (1...9).map { "LPT\($0)" })

    /// The safe form of `name`; equal to `name` when nothing needed changing.
    static func sanitise(_ name: String) -> String {
        var cleaned = String(name.unicodeScalars.map { scalar -> Character in
            if scalar == "/" || scalar == "\0" || scalar.value < 0x20 || scalar.value == 0x7F { return "_" }
            return Character(scalar)
        })
        if cleaned.isEmpty { cleaned = "_empty_" }
        if cleaned == "." || cleaned == ".." { cleaned = cleaned.replacingOccurrences(of: ".", with: "_") }
        let stem = cleaned.split(separator: ".", maxSplits: 1).first.map(String.init)?.uppercased().trimmingCharacters(in: .whitespaces) ?? ""
        if deviceNames.contains(stem) { cleaned = "_" + cleaned }
        if cleaned.utf8.count > 255 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            let suffix = "~" + String(hash, radix: 16)
            var shortened = ""
            for character in cleaned {
                if shortened.utf8.count + String(character).utf8.count + suffix.utf8.count > 255 { break }
                shortened.append(character)
            }
            cleaned = shortened + suffix
        }
        return cleaned
    }
}
