// Fuzz target: the SGE accounting line parser (Sources/BDAccounting/SGEAccounting.swift).
// Invariants: nothing traps; a refusal is an invalidInput with a message; a parsed record
// renders to a line that qacct splits into 45 non-empty fields, that is no comment and no more
// than one line, and that parses back to the same line, key and JSON.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    let record: SGEAccountingRecord
    do {
        record = try SGEAccountingRecord.parse(text)
    } catch {
        requireMessage(error)
        return 0
    }
    let line = record.line()
    let bytes = Array(line.utf8)
    let fields = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
    require(fields.count == 45, "the line has \(fields.count) fields for qacct: \(line)")
    require(fields.allSatisfy { !$0.isEmpty }, "qacct's strtok would merge an empty field: \(line)")
    require(!bytes.contains(10) && !bytes.contains(13) && !bytes.contains(0), "the line is more than one line")
    require(bytes.first != UInt8(ascii: "#"), "the line would be a comment")
    do {
        let again = try SGEAccountingRecord.parse(line)
        require(again.line() == line, "rendering is not stable:\n\(line)\n\(again.line())")
        require(again.key == record.key, "the key changed: \(record.key) vs \(again.key)")
        let json = try JSONEncoder().encode(again)
        let decoded = try JSONDecoder().decode(SGEAccountingRecord.self, from: json)
        require(decoded == again, "the JSON form does not round-trip")
    } catch {
        require(false, "a rendered record does not read back: \(error)\n\(line)")
    }
    return 0
}
