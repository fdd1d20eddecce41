// Fuzz target: the JSON bodies of both APIs (Sources/BDCore/Wire*.swift,
// Sources/BDAccounting/AccountingWire.swift, SGEAccountingRecord's JSON form).
// Invariants: decoding never traps; whatever decodes encodes, and decodes again to the same
// encoding.
import Foundation

func roundTrip<T: Codable>(_ type: T.Type, _ data: Data) {
    guard let value = try? JSONDecoder().decode(T.self, from: data) else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    do {
        let once = try encoder.encode(value)
        let again = try encoder.encode(try JSONDecoder().decode(T.self, from: once))
        require(once == again, "\(T.self) does not round-trip: \(String(decoding: once, as: UTF8.self))")
    } catch {
        require(false, "\(T.self) decoded but does not round-trip: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = fuzzData(data, size)
    // Working-node API (requests, then replies the client decodes).
    roundTrip(ConfigureRequest.self, body)
    roundTrip(CleanRequest.self, body)
    roundTrip(NotifyRequest.self, body)
    roundTrip(PullRequest.self, body)
    roundTrip(RunRequest.self, body)
    roundTrip(ContainerRequest.self, body)
    roundTrip(RemoveRequest.self, body)
    roundTrip(CopyRequest.self, body)
    roundTrip(Envelope<String>.self, body)
    roundTrip(Envelope<StatusResult>.self, body)
    roundTrip(Envelope<[ContainerRow]>.self, body)
    roundTrip(Envelope<[RemoveResult]>.self, body)
    roundTrip(Envelope<RunResult>.self, body)
    // Accounting API.
    roundTrip(SetAccountingRequest.self, body)
    roundTrip(AccountingRecordRequest.self, body)
    roundTrip(Envelope<AccountingReceipt>.self, body)
    roundTrip(AccountingBatchRequest.self, body)
    roundTrip(Envelope<AccountingBatchReceipt>.self, body)
    if let request = try? JSONDecoder().decode(AccountingBatchRequest.self, from: body) {
        for line in request.lines.prefix(AccountingBatchRequest.maxLines) {
            do { _ = try SGEAccountingRecord.parse(line) } catch { requireMessage(error) }
        }
    }
    if let request = try? JSONDecoder().decode(SetAccountingRequest.self, from: body) {
        do { _ = try SGEAccountingRecord.parse(request.accounting) } catch { requireMessage(error) }
    }
    return 0
}
