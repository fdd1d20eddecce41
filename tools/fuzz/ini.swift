// Fuzz target: the configuration file reader (Sources/BDConfig/INIFile.swift).
// Invariants: parsing never traps; a refusal names the file; a parsed file rendered back to
// text parses to the same sections, keys and values.
import Foundation

func renderINI(_ ini: INIFile) -> String {
    var out = ""
    for name in ini.sectionOrder {
        // Spaces inside the brackets: a name may start with a combining mark, which would fuse
        // with '[' into one Character.
        out += "[ \(name) ]\n"
        for (key, entry) in ini.sections[name]!.sorted(by: { $0.key < $1.key }) {
            // Continuation lines are indented; each piece after the first is non-empty.
            out += "\(key) = " + entry.value.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n  ") + "\n"
        }
    }
    return out
}

func values(_ ini: INIFile) -> [String: [String: String]] {
    ini.sections.mapValues { $0.mapValues(\.value) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    let ini: INIFile
    do {
        ini = try INIFile(path: "fuzz.cfg", text: text)
    } catch {
        require(error.file == "fuzz.cfg" && error.description.hasPrefix("fuzz.cfg") && !error.problem.isEmpty,
                "a ConfigError must name the file and say what is wrong: \(error)")
        return 0
    }
    require(Set(ini.sectionOrder) == Set(ini.sections.keys) && ini.sectionOrder.count == ini.sections.count,
            "sectionOrder lists each section once")
    for (name, entries) in ini.sections {
        require(!name.isEmpty, "a section without a name")
        for (key, entry) in entries {
            require(!key.isEmpty && key == key.lowercased(), "key '\(key)' is empty or not lower-cased")
            require(ini.entry(name, key.uppercased())?.value == entry.value || key.uppercased().lowercased() != key,
                    "lookup of '\(key)' is not case-insensitive")
            require(entry.line >= 1, "line numbers start at 1")
        }
    }
    let rendered = renderINI(ini)
    do {
        let again = try INIFile(path: "fuzz.cfg", text: rendered)
        require(again.sectionOrder == ini.sectionOrder, "sections differ after a round trip: \(again.sectionOrder) vs \(ini.sectionOrder)")
        require(values(again) == values(ini), "values differ after a round trip:\n\(rendered)")
    } catch {
        require(false, "the rendered file does not parse: \(error)\n\(rendered)")
    }
    return 0
}
