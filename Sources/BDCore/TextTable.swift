/// A plain-text table with columns padded to their widest cell, as `docker ps` and `qacct`
/// print them. Trailing blanks are trimmed from every line.
public struct TextTable: Sendable {
    public var header: [String]
    public var rows: [[String]]
    /// Spaces between columns.
    public var gap: Int
    /// Columns whose cells are aligned right (numbers).
    public var rightAligned: Set<Int>
    /// A line of this character under the header, as wide as the table; none when nil.
    public var rule: Character?
    /// Rows set apart below a line of `-` (a total); none when empty.
    public var footer: [[String]]

    public init(header: [String], rows: [[String]], gap: Int = 2, rightAligned: Set<Int> = [], rule: Character? = nil,
                footer: [[String]] = []) {
        self.header = header
        self.rows = rows
        self.gap = gap
        self.rightAligned = rightAligned
        self.rule = rule
        self.footer = footer
    }

    /// The table, each line ending in a newline.
    public func render() -> String {
        var widths = header.map(\.count)
        for row in rows + footer {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        let separator = String(repeating: " ", count: gap)
        func line(_ cells: [String]) -> String {
            var text = cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, (i < widths.count ? widths[i] : 0) - cell.count))
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: separator)
            while text.last == " " { text.removeLast() }
            return text + "\n"
        }
        let width = widths.reduce(0, +) + gap * max(0, widths.count - 1)
        let ruleLine = rule.map { String(repeating: $0, count: width) + "\n" } ?? ""
        let footerLines = footer.isEmpty ? "" : String(repeating: "-", count: width) + "\n" + footer.map(line).joined()
        return line(header) + ruleLine + rows.map(line).joined() + footerLines
    }
}
