import Foundation

/// The parsed output of `mtx status`, for example
///
///       Storage Changer /dev/sg1:2 Drives, 10 Slots ( 2 Import/Export )
///     Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = E01003L8
///     Data Transfer Element 1:Empty
///           Storage Element 1:Full :VolumeTag=E01001L8
///           Storage Element 2:Empty
///           Storage Element 9 IMPORT/EXPORT:Full :VolumeTag=CLN001L1
///
/// Drives become `.drive(N)`, ordinary storage elements `.slot(N)`, and import/export
/// elements `.mail(K)` numbered 1… in the order listed (`mailElements[K-1]` is the mtx
/// element number).
struct MtxStatus: Equatable {
    var device: String
    var inventory: ChangerInventory
    var mailElements: [Int]

    static func parse(_ text: String, device: String) throws -> MtxStatus {
        var entries: [ChangerInventory.Entry] = []
        var mail: [Int] = []
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("Data Transfer Element ") {
                let rest = line.dropFirst("Data Transfer Element ".count)
                guard let colon = rest.firstIndex(of: ":"), let number = Int(rest[..<colon]) else {
                    throw parseError(line, device)
                }
                let state = String(rest[rest.index(after: colon)...])
                var loadedFrom: Int?
                if let open = state.range(of: "(Storage Element "), let close = state.range(of: " Loaded)") {
                    loadedFrom = Int(state[open.upperBound..<close.lowerBound])
                }
                entries.append(.init(element: .drive(number), barcode: volumeTag(state),
                                     full: state.hasPrefix("Full"), loadedFrom: loadedFrom))
            } else if line.hasPrefix("Storage Element ") {
                let rest = line.dropFirst("Storage Element ".count)
                guard let colon = rest.firstIndex(of: ":") else { throw parseError(line, device) }
                let label = rest[..<colon]
                let isMail = label.hasSuffix(" IMPORT/EXPORT")
                let numberText = isMail ? label.dropLast(" IMPORT/EXPORT".count) : label
                guard let number = Int(numberText.trimmingCharacters(in: .whitespaces)) else { throw parseError(line, device) }
                let state = String(rest[rest.index(after: colon)...])
                let element: ChangerElement
                if isMail {
                    mail.append(number)
                    element = .mail(mail.count)
                } else {
                    element = .slot(number)
                }
                entries.append(.init(element: element, barcode: volumeTag(state), full: state.hasPrefix("Full"), loadedFrom: nil))
            }
        }
        guard !entries.isEmpty else {
            throw TapeDeviceError(EIO, "changer \(device): mtx status printed no elements: \(text.prefix(200))")
        }
        return MtxStatus(device: device, inventory: ChangerInventory(entries: entries), mailElements: mail)
    }

    /// "…:VolumeTag = E01003L8   " or "…:VolumeTag=E01003L8" → "E01003L8".
    static func volumeTag(_ state: String) -> String? {
        guard let range = state.range(of: "VolumeTag") else { return nil }
        var rest = state[range.upperBound...].drop { $0 == " " }
        guard rest.first == "=" else { return nil }
        rest = rest.dropFirst()
        let tag = rest.trimmingCharacters(in: .whitespaces)
        let end = tag.firstIndex(of: ":") ?? tag.endIndex
        let value = tag[..<end].trimmingCharacters(in: .whitespaces)
        return value.isEmpty ? nil : value
    }

    static func parseError(_ line: String, _ device: String) -> TapeDeviceError {
        TapeDeviceError(EIO, "changer \(device): cannot parse mtx status line '\(line)'")
    }
}
