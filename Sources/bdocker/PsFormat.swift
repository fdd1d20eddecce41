import BDCore
import Foundation

/// `ps --format` as docker reads it, for the fields bdocker has: `{{.Field}}` placeholders in
/// literal text (`\t` is a tab), `table` first for aligned columns under a header, or `json`
/// for one object per line. Anything else in braces is an error, not silently printed.
struct PsFormat {
    enum Piece { case text(String), field(Field) }
    enum Field: String, CaseIterable {
        case id = "ID", image = "Image", command = "Command", createdAt = "CreatedAt", runningFor = "RunningFor"
        case status = "Status", ports = "Ports", names = "Names"

        var header: String {
            switch self {
            case .id: "CONTAINER ID"
            case .createdAt: "CREATED AT"
            case .runningFor: "CREATED"
            default: rawValue.uppercased()
            }
        }

        func value(_ row: ContainerRow, now: Date) -> String {
            switch self {
            case .id: String(row.id.prefix(12))
            case .image: row.image
            case .command: "\"\(row.command)\""
            case .createdAt: ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(row.created)))
            case .runningFor: PsTable.ago(row.created, now: now)
            case .status: row.status
            case .ports: row.ports
            case .names: row.names
            }
        }
    }

    let pieces: [Piece]
    let table: Bool
    let json: Bool

    init(_ format: String) throws(BDockerError) {
        json = format == "json"
        table = format.hasPrefix("table ")
        var rest = Substring(table ? String(format.dropFirst("table ".count)) : format).replacingOccurrences(of: "\\t", with: "\t")[...]
        var pieces: [Piece] = []
        while !json, let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw .invalidInput("--format: '{{' without '}}' in '\(format)'")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            guard name.hasPrefix("."), let field = Field(rawValue: String(name.dropFirst())) else {
                throw .invalidInput("--format: unknown field '\(name)'; the fields are "
                    + Field.allCases.map { "{{.\($0.rawValue)}}" }.joined(separator: " "))
            }
            pieces.append(.field(field))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty && !json { pieces.append(.text(String(rest))) }
        self.pieces = pieces
    }

    func render(_ rows: [ContainerRow], now: Date) throws(BDockerError) -> String {
        if json {
            return rows.map { row in
                let object = Dictionary(uniqueKeysWithValues: Field.allCases.map { ($0.rawValue, JSONValue.string($0.value(row, now: now))) })
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                return String(decoding: (try? encoder.encode(JSONValue.object(object))) ?? Data(), as: UTF8.self) + "\n"
            }.joined()
        }
        func line(_ value: (Field) -> String) -> String {
            pieces.map { piece in
                switch piece {
                case .text(let t): t
                case .field(let f): value(f)
                }
            }.joined()
        }
        let lines = rows.map { row in line { $0.value(row, now: now) } }
        guard table else { return lines.map { $0 + "\n" }.joined() }
        // Tabs separate columns: aligned under the header, as docker's tabwriter does.
        let header = line(\.header).components(separatedBy: "\t")
        return TextTable(header: header, rows: lines.map { $0.components(separatedBy: "\t") }, gap: 3).render()
    }
}
