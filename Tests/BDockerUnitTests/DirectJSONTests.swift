@testable import BDAPI
import BDAccounting
import BDCore
import Foundation
import NIOCore
import Testing

/// The accounting replies write their own JSON (`DirectJSON`); a client must not be able to
/// tell: the bytes are JSONEncoder's, for every kind of item and every awkward character.
@Suite struct DirectJSONTests {
    static let awkward = ["", "job 42.3 on node1 started at 1700000010", "quote \" backslash \\ slash /",
                          "controls \u{0}\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F} del \u{7F}", "é ü 漢字 🚀 \u{2028}\u{2029}"]

    static func encoderBytes<T: Codable & Sendable>(_ value: T, status: Int) throws -> [UInt8] {
        Array(try JSONReply.encoder.encode(Envelope(statusCode: status, results: value)))
    }

    static func directBytes<T: Codable & Sendable>(_ value: T, status: Int) -> [UInt8] {
        var buffer = JSONReply.envelope(value, status: .init(code: status))
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    @Test(arguments: awkward)
    func aReceiptIsWhatJSONEncoderWrites(_ text: String) throws {
        for new in [true, false] {
            let receipt = AccountingReceipt(new: new, record: text)
            #expect(Self.directBytes(receipt, status: 200) == (try Self.encoderBytes(receipt, status: 200)))
        }
    }

    @Test func aBatchReceiptIsWhatJSONEncoderWrites() throws {
        var items: [AccountingBatchReceipt.Item] = []
        for text in Self.awkward {
            items.append(.init(statusCode: 200, new: true, record: text))
            items.append(.init(statusCode: 200, new: false, record: text))
            items.append(.init(statusCode: 409, error: text))
            items.append(.init(statusCode: 503, new: true, record: text, error: text))
        }
        items.append(.init(statusCode: 500))
        for receipt in [AccountingBatchReceipt(items: []), AccountingBatchReceipt(items: items)] {
            let direct = Self.directBytes(receipt, status: 200)
            #expect(direct == (try Self.encoderBytes(receipt, status: 200)))
            // And it reads back as the same receipt.
            let decoded = try JSONDecoder().decode(Envelope<AccountingBatchReceipt>.self, from: Data(direct))
            #expect(decoded.results == receipt && decoded.statusCode == 200)
        }
    }

    @Test func typesWithoutTheirOwnJSONStillGoThroughJSONEncoder() throws {
        let info = JobInfo(id: "42", taskID: "3", spool: "/var/spool/x")
        #expect(Self.directBytes(info, status: 201) == (try Self.encoderBytes(info, status: 201)))
    }
}
