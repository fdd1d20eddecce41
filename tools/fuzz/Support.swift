// Shared by every fuzz target (tools/fuzz.sh compiles it into each).
import Foundation

/// The input as text, the way the daemon sees a file or a body: invalid UTF-8 becomes U+FFFD.
func fuzzText(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

func fuzzData(_ data: UnsafePointer<UInt8>, _ size: Int) -> Data {
    Data(bytes: data, count: size)
}

/// An invariant: when it does not hold, say which and crash, so libFuzzer saves the input.
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition {
        FileHandle.standardError.write(Data("invariant failed at \(file):\(line): \(message())\n".utf8))
        abort()
    }
}

/// A refusal must say something: an empty message would reach the user as a blank error.
func requireMessage(_ error: BDockerError) {
    guard case .invalidInput(let message) = error else {
        require(false, "parsers refuse input with invalidInput, got \(error)")
        return
    }
    require(!message.isEmpty, "an invalidInput without a message")
}
