/// A reply type that writes its own JSON, byte for byte what `JSONEncoder` with `.sortedKeys`
/// would write (optionals left out when nil, "/" escaped). For the replies on the accounting
/// ingest's hot path: JSONEncoder's generic containers were ~9 % of the daemon's CPU for a
/// batch's 250-item receipt. `DirectJSONTests` holds each type to JSONEncoder's bytes.
public protocol DirectJSON {
    func writeJSON(to out: inout [UInt8])
}

extension [UInt8] {
    /// A JSON string literal, escaped as JSONEncoder escapes it.
    public mutating func appendJSONString(_ text: String) {
        append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): append(contentsOf: [0x5C, 0x5C])
            case UInt8(ascii: "/"): append(contentsOf: [0x5C, 0x2F])
            case 0x08: append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0A: append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                append(contentsOf: Array("\\u00".utf8))
                append(hex[Int(byte >> 4)])
                append(hex[Int(byte & 0xF)])
            default: append(byte)
            }
        }
        append(UInt8(ascii: "\""))
    }

    public mutating func appendJSONKey(_ key: StaticString) {
        append(UInt8(ascii: "\""))
        key.withUTF8Buffer { append(contentsOf: $0) }
        append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    public mutating func appendJSONBool(_ value: Bool) {
        append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func appendJSONInt(_ value: Int) {
        append(contentsOf: String(value).utf8)
    }
}

extension Envelope: DirectJSON where Results: DirectJSON {
    public func writeJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        out.appendJSONKey("results")
        results.writeJSON(to: &out)
        out.append(UInt8(ascii: ","))
        out.appendJSONKey("status_code")
        out.appendJSONInt(statusCode)
        out.append(UInt8(ascii: "}"))
    }
}
