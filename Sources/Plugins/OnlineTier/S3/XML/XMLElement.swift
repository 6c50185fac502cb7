/// One element of a parsed XML document: its local name (any `prefix:` dropped), its
/// attributes, its child elements in order, and the character data directly inside it.
struct XMLElement {
    var name: String
    var attributes: [String: String] = [:]
    var children: [XMLElement] = []
    var text = ""

    /// The first child element called `name`.
    func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }

    /// Every child element called `name`, in document order.
    func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }

    /// The text of the first child called `name`.
    func value(_ name: String) -> String? { child(name)?.text }
}

/// Builds the small XML bodies S3 requests carry, escaping every text value.
struct XMLBuilder {
    private(set) var text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

    /// S3's namespace, which request bodies carry on their root element.
    static let s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    mutating func open(_ name: String, namespace: String? = nil) {
        text += "<\(name)" + (namespace.map { " xmlns=\"\(Self.escape($0))\"" } ?? "") + ">"
    }

    mutating func close(_ name: String) { text += "</\(name)>" }

    mutating func leaf(_ name: String, _ value: String) { text += "<\(name)>\(Self.escape(value))</\(name)>" }

    var bytes: [UInt8] { Array(text.utf8) }

    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\r": out += "&#13;"
            default: out.append(character)
            }
        }
        return out
    }
}
