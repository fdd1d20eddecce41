import BDCore
import Foundation
import Testing

/// The container commands' newer wire options: older bodies still mean what they did, and the
/// log options read from a query refuse what is not a number.
@Suite("Wire options")
struct WireOptionsTests {
    @Test func aRunBodyWithoutTheNewerFieldsKeepsItsMeaning() throws {
        let old = #"{"token":"t","image_id":"img","script":["true"],"detach":false,"working_dir":null,"volumes":[]}"#
        let request = try JSONDecoder().decode(RunRequest.self, from: Data(old.utf8))
        #expect(request.env.isEmpty && request.name == nil && request.entrypoint == nil && !request.autoRemove)
        let full = RunRequest(token: "t", imageID: "img", script: [], detach: true, workingDir: nil, volumes: [],
                              env: ["A=1"], name: "n1", entrypoint: "", autoRemove: true)
        let back = try JSONDecoder().decode(RunRequest.self, from: JSONEncoder().encode(full))
        #expect(back.env == ["A=1"] && back.name == "n1" && back.entrypoint == "" && back.autoRemove)
    }

    @Test func logOptionsFromAQuery() throws {
        let all = try LogOptions.fromQuery(follow: nil, tail: "all", timestamps: nil)
        #expect(!all.follow && all.tail == nil && !all.timestamps)
        let some = try LogOptions.fromQuery(follow: "1", tail: "5", timestamps: "true")
        #expect(some.follow && some.tail == 5 && some.timestamps)
        for bad in ["x", "-1", "99999999999999999999999"] {
            #expect(throws: BDockerError.self) { try LogOptions.fromQuery(follow: nil, tail: bad, timestamps: nil) }
        }
    }
}
