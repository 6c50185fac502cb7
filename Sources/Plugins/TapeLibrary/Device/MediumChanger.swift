import Glibc
/// A SCSI medium changer (SMC): storage slots, import/export ("mail") slots and drives,
/// each holding at most one cartridge identified by its volume tag (barcode).
///
/// Element numbering follows `mtx`: drives from 0, storage slots from 1, mail slots from 1.
/// Keeps no policy: it moves what it is told to and refuses like the device does.
protocol MediumChanger: AnyObject {
    func inventory() throws -> ChangerInventory
    /// MOVE MEDIUM. Refusals: `sourceEmpty`, `destinationFull`, `driveInUse` (a drive another
    /// process holds open), `noSuchElement`.
    func move(from source: ChangerElement, to destination: ChangerElement) throws
}

enum ChangerElement: Hashable, Codable, Sendable, CustomStringConvertible {
    case slot(Int)
    case mail(Int)
    case drive(Int)

    var description: String {
        switch self {
        case .slot(let number): return "slot:\(number)"
        case .mail(let number): return "mail:\(number)"
        case .drive(let number): return "drive:\(number)"
        }
    }

    /// Parses "slot:N", "mail:N" or "drive:N".
    static func parse(_ text: String) -> ChangerElement? {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let number = Int(parts[1]), number >= 0 else { return nil }
        switch parts[0] {
        case "slot": return .slot(number)
        case "mail": return .mail(number)
        case "drive": return .drive(number)
        default: return nil
        }
    }
}

/// READ ELEMENT STATUS: what is where.
struct ChangerInventory: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var element: ChangerElement
        /// The volume tag, nil when the element is empty (or the cartridge has no label:
        /// then `full` is true and barcode nil).
        var barcode: String?
        var full: Bool
        /// For a loaded drive: the storage slot the cartridge came from.
        var loadedFrom: Int?
    }

    var entries: [Entry]

    func entry(_ element: ChangerElement) -> Entry? { entries.first { $0.element == element } }

    func location(of barcode: String) -> ChangerElement? {
        entries.first { $0.barcode == barcode }?.element
    }

    var drives: [Entry] { entries.filter { if case .drive = $0.element { return true } else { return false } } }
    var slots: [Entry] { entries.filter { if case .slot = $0.element { return true } else { return false } } }
    var mailSlots: [Entry] { entries.filter { if case .mail = $0.element { return true } else { return false } } }
}
