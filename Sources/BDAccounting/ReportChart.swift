import Foundation

/// Escaping for HTML text, attribute values and inline SVG alike. Every name on the report
/// (owner, group, queue, host, project) comes from the records, so from the users.
enum Markup {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            // Control characters are not allowed in XML (inline SVG) and mean nothing here;
            // stored lines cannot hold them, this is for any other caller.
            case _ where (scalar.value < 0x20 && scalar != "\t" && scalar != "\n") || scalar.value == 0x7F:
                out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A long name cut for a chart label (the whole name is in the mark's tooltip and the tables).
    static func label(_ text: String, max: Int = 22) -> String {
        text.count <= max ? text : String(text.prefix(max - 1)) + "…"
    }
}

/// The report's charts as inline SVG drawn on the server: clusters are offline, so no script
/// and nothing fetched. Each data mark (bar, line, point) has class `mark`; the browser test
/// checks every chart has drawn marks.
enum ReportChart {
    static let palette = ["#3b6fb6", "#d9622b", "#3f9a4a", "#b8417f", "#8a6d1f", "#5a5fc8"]
    static let othersColor = "#9a9a9a"
    static let axisColor = "#777"
    static let gridColor = "#e3e3e3"

    struct Series {
        var name: String
        var values: [Double]
        var color: String
    }

    /// Horizontal bars, one per item, the longest across the whole width; values in `unit`.
    static func bars(id: String, title: String, items: [(label: String, value: Double)], unit: String) -> String {
        let width = 640.0, labelWidth = 170.0, valueWidth = 90.0, row = 22.0, top = 8.0
        let plot = width - labelWidth - valueWidth
        let height = top * 2 + row * Double(max(items.count, 1))
        let top1 = items.map(\.value).max() ?? 0
        var svg = open(id: id, title: title, width: width, height: height)
        if items.isEmpty {
            svg += text(x: labelWidth, y: top + 15, "no jobs in this window", anchor: "start", cls: "empty")
        }
        for (i, item) in items.enumerated() {
            let y = top + Double(i) * row
            let length = top1 > 0 ? max(item.value > 0 ? 1 : 0, plot * item.value / top1) : 0
            svg += text(x: labelWidth - 6, y: y + 15, Markup.label(item.label), anchor: "end")
            svg += "<rect class=\"mark bar\" x=\"\(f(labelWidth))\" y=\"\(f(y + 3))\" width=\"\(f(length))\" height=\"\(f(row - 6))\" "
                + "fill=\"\(palette[0])\"><title>\(Markup.escape(item.label)): \(number(item.value)) \(unit)</title></rect>"
            svg += text(x: labelWidth + length + 5, y: y + 15, number(item.value), anchor: "start", cls: "value")
        }
        return svg + "</svg>"
    }

    /// A stacked column per day: each series' part of the day's value, bottom up.
    static func dailyColumns(id: String, title: String, days: [Int], series: [Series], unit: String) -> String {
        let frame = Frame(days: days.count, top: nice(days.indices.map { d in series.reduce(0) { $0 + $1.values[d] } }.max() ?? 0))
        var svg = open(id: id, title: title, width: frame.width, height: frame.height) + frame.axes(days: days, unit: unit)
        let column = frame.plotWidth / Double(max(days.count, 1))
        for (d, day) in days.enumerated() {
            var base = 0.0
            for s in series where s.values[d] > 0 {
                let y0 = frame.y(base), y1 = frame.y(base + s.values[d])
                base += s.values[d]
                svg += "<rect class=\"mark column\" x=\"\(f(frame.left + Double(d) * column + column * 0.1))\" y=\"\(f(y1))\" "
                    + "width=\"\(f(column * 0.8))\" height=\"\(f(max(0.5, y0 - y1)))\" fill=\"\(s.color)\">"
                    + "<title>\(ReportWindow.date(day)) \(Markup.escape(s.name)): \(number(s.values[d])) \(unit)</title></rect>"
            }
        }
        return svg + legend(series, frame: frame) + "</svg>"
    }

    /// A line per series over the days, with a point per day.
    static func dailyLines(id: String, title: String, days: [Int], series: [Series], unit: String) -> String {
        let frame = Frame(days: days.count, top: nice(series.flatMap(\.values).max() ?? 0))
        var svg = open(id: id, title: title, width: frame.width, height: frame.height) + frame.axes(days: days, unit: unit)
        let column = frame.plotWidth / Double(max(days.count, 1))
        for s in series {
            let points = s.values.enumerated().map { d, v in (frame.left + (Double(d) + 0.5) * column, frame.y(v)) }
            svg += "<polyline class=\"mark line\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\" points=\""
                + points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ") + "\"><title>\(Markup.escape(s.name))</title></polyline>"
            // Points make a one-day window (one point, no line) visible too; skipped when crowded.
            if days.count <= 62 {
                for (d, p) in points.enumerated() where s.values[d] > 0 {
                    svg += "<circle class=\"mark point\" cx=\"\(f(p.0))\" cy=\"\(f(p.1))\" r=\"2.5\" fill=\"\(s.color)\">"
                        + "<title>\(ReportWindow.date(days[d])) \(Markup.escape(s.name)): \(number(s.values[d])) \(unit)</title></circle>"
                }
            }
        }
        return svg + legend(series, frame: frame) + "</svg>"
    }

    /// The plot area of the daily charts and its axes.
    struct Frame {
        let days: Int
        let top: Double
        let width = 720.0, left = 56.0, right = 12.0, plotTop = 24.0, plotHeight = 170.0
        var plotWidth: Double { width - left - right }
        var bottom: Double { plotTop + plotHeight }
        /// Below the plot: date labels, then the legend.
        var height: Double { bottom + 24 + 22 }

        func y(_ value: Double) -> Double { bottom - (top > 0 ? plotHeight * value / top : 0) }

        func axes(days list: [Int], unit: String) -> String {
            var svg = ""
            for step in 0...4 {
                let value = top * Double(step) / 4, y = self.y(value)
                svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(width - right))\" y2=\"\(f(y))\" stroke=\"\(step == 0 ? axisColor : gridColor)\"/>"
                svg += ReportChart.text(x: left - 5, y: y + 4, number(value), anchor: "end", cls: "tick")
            }
            svg += ReportChart.text(x: 4, y: 12, unit, anchor: "start", cls: "tick")
            // About eight date labels, whatever the window's length.
            let column = plotWidth / Double(max(days, 1)), every = max(1, (days + 7) / 8)
            for (d, day) in list.enumerated() where d % every == 0 {
                svg += ReportChart.text(x: left + (Double(d) + 0.5) * column, y: bottom + 16, String(ReportWindow.date(day).dropFirst(5)),
                                        anchor: "middle", cls: "tick")
            }
            return svg
        }
    }

    static func legend(_ series: [Series], frame: Frame) -> String {
        var svg = "", x = frame.left
        let y = frame.bottom + 32
        for s in series where series.count > 1 {
            let name = Markup.label(s.name, max: 16)
            svg += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"10\" height=\"10\" fill=\"\(s.color)\"/>"
            svg += text(x: x + 14, y: y + 9, name, anchor: "start", cls: "legend")
            x += 26 + Double(name.count) * 7
        }
        return svg
    }

    static func open(id: String, title: String, width: Double, height: Double) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"\(id)\" width=\"\(f(width))\" height=\"\(f(height))\" "
            + "viewBox=\"0 0 \(f(width)) \(f(height))\" role=\"img\" aria-labelledby=\"\(id)-title\">"
            + "<title id=\"\(id)-title\">\(Markup.escape(title))</title>"
    }

    static func text(x: Double, y: Double, _ content: String, anchor: String, cls: String = "label") -> String {
        "<text class=\"\(cls)\" x=\"\(f(x))\" y=\"\(f(y))\" text-anchor=\"\(anchor)\">\(Markup.escape(content))</text>"
    }

    /// The smallest of 1, 2, 2.5, 5 × 10^n at or above `value`: the top of a readable axis.
    static func nice(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        let power = pow(10, floor(log10(value)))
        for step in [1, 2, 2.5, 5, 10] where step * power >= value * (1 - 1e-12) { return step * power }
        return 10 * power
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Hours and GB·h as the tables show them.
    static func number(_ value: Double) -> String { String(format: "%.2f", value) }
}
