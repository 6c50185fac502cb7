/// A small, strict parser for the XML that S3 servers send: elements, attributes, character
/// data with the five named entities and numeric character references, CDATA sections,
/// comments and processing instructions. A DOCTYPE is refused (S3 never sends one, and
/// refusing it rules out entity expansion). Nesting is limited to 64 levels.
///
/// Written here rather than using FoundationXML's XMLParser to keep libxml2 (and its global
/// state, shared by every thread of the host process) out of the plugin.
struct S3XMLParser {
    struct Failure: Error, CustomStringConvertible {
        var offset: Int
        var reason: String
        var description: String { "malformed XML at byte \(offset): \(reason)" }
    }

    private let bytes: [UInt8]
    private var position = 0
    private static let maximumDepth = 64

    /// Parses a whole document and returns its root element.
    static func parse<Bytes: Sequence>(_ document: Bytes) throws -> XMLElement where Bytes.Element == UInt8 {
        var parser = S3XMLParser(bytes: Array(document))
        return try parser.document()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func document() throws -> XMLElement {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        try skipMisc()
        guard peek() == UInt8(ascii: "<") else { throw fail("expected the root element") }
        let root = try element(depth: 0)
        try skipMisc()
        guard position == bytes.count else { throw fail("content after the root element") }
        return root
    }

    /// White space, comments and processing instructions outside the root element.
    private mutating func skipMisc() throws {
        while true {
            skipSpace()
            if starts("<?") {
                try skip(past: "?>")
            } else if starts("<!--") {
                try skip(past: "-->")
            } else if starts("<!DOCTYPE") || starts("<!doctype") {
                throw fail("a DOCTYPE is not accepted")
            } else {
                return
            }
        }
    }

    private mutating func element(depth: Int) throws -> XMLElement {
        guard depth < Self.maximumDepth else { throw fail("elements nest deeper than \(Self.maximumDepth) levels") }
        position += 1  // <
        let qualified = try name()
        var element = XMLElement(name: Self.localName(qualified))
        while true {
            skipSpace()
            guard let byte = peek() else { throw fail("the document ends inside <\(qualified)>") }
            if byte == UInt8(ascii: "/") {
                position += 1
                guard peek() == UInt8(ascii: ">") else { throw fail("expected > after / in <\(qualified)>") }
                position += 1
                return element
            }
            if byte == UInt8(ascii: ">") {
                position += 1
                break
            }
            let attribute = try name()
            skipSpace()
            guard peek() == UInt8(ascii: "=") else { throw fail("expected = after attribute \(attribute)") }
            position += 1
            skipSpace()
            guard let quote = peek(), quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else {
                throw fail("expected a quoted value for attribute \(attribute)")
            }
            position += 1
            let start = position
            while let next = peek(), next != quote {
                guard next != UInt8(ascii: "<") else { throw fail("< inside an attribute value") }
                position += 1
            }
            guard peek() == quote else { throw fail("unterminated attribute value") }
            element.attributes[attribute] = try decode(bytes[start..<position])
            position += 1
        }
        var text: [UInt8] = []
        while true {
            guard let byte = peek() else { throw fail("the document ends inside <\(qualified)>") }
            if byte != UInt8(ascii: "<") {
                let start = position
                while let next = peek(), next != UInt8(ascii: "<") { position += 1 }
                text.append(contentsOf: Array(try decode(bytes[start..<position]).utf8))
            } else if starts("</") {
                position += 2
                let closing = try name()
                guard closing == qualified else { throw fail("</\(closing)> closes <\(qualified)>") }
                skipSpace()
                guard peek() == UInt8(ascii: ">") else { throw fail("expected > to close </\(closing)") }
                position += 1
                element.text = String(decoding: text, as: UTF8.self)
                return element
            } else if starts("<![CDATA[") {
                position += 9
                let start = position
                try skip(past: "]]>")
                text.append(contentsOf: bytes[start..<(position - 3)])
            } else if starts("<!--") {
                try skip(past: "-->")
            } else if starts("<?") {
                try skip(past: "?>")
            } else {
                element.children.append(try self.element(depth: depth + 1))
            }
        }
    }

    private mutating func name() throws -> String {
        let start = position
        while let byte = peek(), !Self.isSpace(byte), ![UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: "="),
                                                        UInt8(ascii: "<"), UInt8(ascii: "\""), UInt8(ascii: "'")].contains(byte) {
            position += 1
        }
        guard position > start else { throw fail("expected a name") }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    /// Character data with entity and character references replaced.
    private func decode(_ raw: ArraySlice<UInt8>) throws -> String {
        guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
        var out = ""
        var index = raw.startIndex
        var plainStart = index
        while index < raw.endIndex {
            guard raw[index] == UInt8(ascii: "&") else { index += 1; continue }
            out += String(decoding: raw[plainStart..<index], as: UTF8.self)
            guard let end = raw[index...].firstIndex(of: UInt8(ascii: ";")), end - index <= 12 else {
                throw Failure(offset: index, reason: "an & that starts no entity")
            }
            let entity = String(decoding: raw[(index + 1)..<end], as: UTF8.self)
            switch entity {
            case "lt": out += "<"
            case "gt": out += ">"
            case "amp": out += "&"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let number: UInt32?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    number = UInt32(entity.dropFirst(2), radix: 16)
                } else if entity.hasPrefix("#") {
                    number = UInt32(entity.dropFirst(), radix: 10)
                } else {
                    number = nil
                }
                guard let number, let scalar = Unicode.Scalar(number) else {
                    throw Failure(offset: index, reason: "unknown entity &\(entity);")
                }
                out.unicodeScalars.append(scalar)
            }
            index = end + 1
            plainStart = index
        }
        return out + String(decoding: raw[plainStart..<raw.endIndex], as: UTF8.self)
    }

    private static func localName(_ qualified: String) -> String {
        guard let colon = qualified.lastIndex(of: ":") else { return qualified }
        return String(qualified[qualified.index(after: colon)...])
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private func starts(_ text: String) -> Bool {
        let pattern = Array(text.utf8)
        return position + pattern.count <= bytes.count && bytes[position..<(position + pattern.count)].elementsEqual(pattern)
    }

    private mutating func skipSpace() { while let byte = peek(), Self.isSpace(byte) { position += 1 } }

    private mutating func skip(past terminator: String) throws {
        let pattern = Array(terminator.utf8)
        while position + pattern.count <= bytes.count {
            if bytes[position..<(position + pattern.count)].elementsEqual(pattern) {
                position += pattern.count
                return
            }
            position += 1
        }
        throw fail("missing \(terminator)")
    }

    private func fail(_ reason: String) -> Failure { Failure(offset: position, reason: reason) }
}
