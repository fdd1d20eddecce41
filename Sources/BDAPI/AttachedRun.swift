import BDCore
import BDCredentials
import BDDocker
import BDWorkingNode
import Foundation
import Hummingbird
import Logging
import NIOCore

/// An attached `run` with `-i` or `-t`: the container attached to over the engine's hijacked
/// connection, its output streamed back as usual, and (from a framed request body) the
/// client's stdin and terminal size passed on.
///
/// Client to daemon, the request body is `StreamFrames`: first one `request` frame (the
/// `RunRequest`), then `stdin` frames and `resize` frames; the end of the body is EOF for the
/// container's stdin. Nothing is attached before the token in the request frame is checked
/// against the caller's uid, and only the container this request creates is attached to.
enum AttachedRun {
    /// The largest frame a client may send: the request's JSON is bounded like any body.
    static let maxFrame = maxBodyBytes

    /// `PUT /run` with a framed body.
    static func framed(_ request: Request, _ context: BDContext, _ node: WorkingNode) async throws -> Response {
        let input = FramedInput(body: request.body, channel: context.channel)
        guard let (kind, payload) = try await input.nextFrame(), kind == .request else {
            throw BDockerError.invalidInput("a framed run body starts with a request frame (kind \(StreamFrameKind.request.rawValue))")
        }
        let body = try Request.decodeJSON(RunRequest.self, from: Data(payload))
        guard !body.detach else { throw BDockerError.invalidInput("a detached run takes a JSON body, not frames") }
        // The token first: only its job's own user may hold a connection open.
        _ = try await node.tokens.requireUserToken(body.token, caller: context.caller)
        PeerDirectory.shared.hold(context.channel)
        do {
            let prepared = try await node.createContainer(body, caller: context.caller)
            return try reply(request, context, node, body, id: prepared.id, input: input)
        } catch {
            input.close()
            throw error
        }
    }

    /// The streamed reply of an attached run over the hijacked attach; `input` feeds stdin and
    /// resizes (nil for a JSON body: `-t` alone from a client that sends no frames).
    static func reply(_ request: Request, _ context: BDContext, _ node: WorkingNode, _ body: RunRequest, id: String,
                      input: FramedInput?) throws(BDockerError) -> Response {
        let docker = try node.engine()
        let inbox = input?.inbox
        return StreamReply.make(request, logger: node.logger, caller: context.caller, input: input) { sink throws(BDockerError) in
            try await docker.withAttachment(id, stdin: body.interactive, tty: body.tty) { attachment throws(BDockerError) in
                try await docker.start(id)
                try await sink.send(.container, ByteBuffer(string: id))
                let stdin = attachment.input
                let outcome = await withTaskGroup(of: Void.self, returning: Result<Void, BDockerError>.self) { group in
                    if let inbox {
                        group.addTask {
                            await feed(inbox, to: stdin, docker: docker, id: id, body: body, logger: node.logger)
                        }
                    }
                    let result = await Result { () async throws(BDockerError) in
                        try await attachment.streamOutput { frame throws(BDockerError) in try await sink.send(frame) }
                    }
                    // The output ended: the container stopped (or the client left). Whatever
                    // still waits to be written to its stdin is dropped, and so is the rest.
                    inbox?.discard()
                    stdin.hangUp()
                    await group.waitForAll()
                    return result
                }
                try outcome.get()
            }
            let exitCode = try await docker.wait(id)
            if body.autoRemove { await node.removeAfterRun(id) }
            return RunResult(id: id, exitCode: exitCode)
        }
    }

    /// Passes the client's frames on to the container until the body ends (then closes its
    /// stdin) or the run ends.
    static func feed(_ inbox: FrameInbox, to stdin: AttachmentInput, docker: DockerEngine, id: String, body: RunRequest,
                     logger: Logger) async {
        while let (kind, payload) = await inbox.take() {
            switch kind {
            case .stdin where body.interactive && !payload.isEmpty:
                do {
                    try await stdin.write(ByteBuffer(bytes: payload))
                } catch {
                    // The container's stdin is gone: what the client still sends goes nowhere.
                    inbox.discard()
                    return
                }
            case .resize where body.tty:
                guard let size = try? JSONDecoder().decode(TerminalSize.self, from: Data(payload)),
                      (1...10_000).contains(size.height), (1...10_000).contains(size.width) else { continue }
                do {
                    try await docker.resize(id, to: size)
                } catch {
                    // A resize racing the container's exit fails; the run is not the worse for it.
                    logger.debug("resizing \(id.prefix(12)) failed: \(error.message)")
                }
            default:
                continue
            }
        }
        // The end of the client's input is the container's EOF, except on a terminal: there the
        // engine would answer it by cutting the output, and what the container prints after
        // would be lost; its terminal stays open until it exits (a raw terminal ends its
        // input only when it hangs up, and then SIGHUP is forwarded).
        if body.interactive && !body.tty { stdin.closeStdin() }
    }
}

/// A framed request body being read: the frames, and the hold on the connection that keeps it
/// open while the body is silent. The route reads the request frame; `readBody` the rest,
/// into `inbox`.
final class FramedInput: @unchecked Sendable {
    // @unchecked: the iterator and reader are used by one task at a time: the route handler
    // (request frame), then the reply's reader task (`readBody`), never both.
    private var iterator: RequestBody.AsyncIterator
    private var reader = StreamFrameReader(maxPayload: AttachedRun.maxFrame)
    private var ready: [(StreamFrameKind, [UInt8])] = []
    private let channel: any Channel
    let inbox = FrameInbox()

    init(body: RequestBody, channel: any Channel) {
        iterator = body.makeAsyncIterator()
        self.channel = channel
    }

    /// The next whole frame, or nil at the body's end.
    func nextFrame() async throws(BDockerError) -> (StreamFrameKind, [UInt8])? {
        while ready.isEmpty {
            let chunk: ByteBuffer?
            do {
                chunk = try await iterator.next()
            } catch {
                throw .invalidInput("reading the request body failed: \(error)")
            }
            guard let chunk else {
                if reader.hasPartialFrame { throw .invalidInput("the request body ended in the middle of a frame") }
                return nil
            }
            ready = try reader.feed(Array(chunk.readableBytesView))
        }
        return ready.removeFirst()
    }

    /// Reads frames into `inbox` until the body ends, fails or `close` drops them.
    func readBody(logger: Logger) async {
        do throws(BDockerError) {
            while let frame = try await nextFrame() {
                await inbox.put(frame)
            }
        } catch {
            if !Task.isCancelled { logger.info("attached run: \(error.message); its stdin is closed") }
        }
        inbox.finish()
    }

    /// The run is over: frames still coming are dropped and the connection may idle out again.
    func close() {
        inbox.discard()
        PeerDirectory.shared.releaseHold(channel)
    }
}

/// Hands frames from the body's reader to the run one at a time, so a container that does not
/// read its stdin stops the reading of the body (and the client's writes) instead of filling
/// memory. After `discard`, `put` returns at once and `take` returns nil.
final class FrameInbox: @unchecked Sendable {
    // @unchecked: every field is touched under `lock`; continuations are resumed outside it.
    typealias Frame = (StreamFrameKind, [UInt8])
    private let lock = NSLock()
    private var slot: Frame?
    private var putter: CheckedContinuation<Void, Never>?
    private var taker: CheckedContinuation<Frame?, Never>?
    private var ended = false
    private var discarding = false

    /// Waits until the frame is taken (or dropped by `discard`). One caller at a time.
    func put(_ frame: Frame) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if discarding {
                lock.unlock()
                c.resume()
            } else if let taker {
                self.taker = nil
                lock.unlock()
                taker.resume(returning: frame)
                c.resume()
            } else {
                slot = frame
                putter = c
                lock.unlock()
            }
        }
    }

    /// The next frame; nil once the body ended and every frame was taken, or after `discard`.
    func take() async -> Frame? {
        await withCheckedContinuation { (c: CheckedContinuation<Frame?, Never>) in
            lock.lock()
            if let frame = slot {
                slot = nil
                let putter = self.putter
                self.putter = nil
                lock.unlock()
                putter?.resume()
                c.resume(returning: frame)
            } else if ended || discarding {
                lock.unlock()
                c.resume(returning: nil)
            } else {
                taker = c
                lock.unlock()
            }
        }
    }

    /// The body ended: `take` returns nil once the last frame is taken.
    func finish() {
        lock.lock()
        ended = true
        let taker = slot == nil ? self.taker : nil
        if taker != nil { self.taker = nil }
        lock.unlock()
        taker?.resume(returning: nil)
    }

    /// Drops the waiting frame and every later one; wakes both sides.
    func discard() {
        lock.lock()
        discarding = true
        slot = nil
        let putter = self.putter, taker = self.taker
        self.putter = nil
        self.taker = nil
        lock.unlock()
        putter?.resume()
        taker?.resume(returning: nil)
    }
}
