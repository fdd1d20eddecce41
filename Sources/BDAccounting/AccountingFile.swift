import BDCore
import BDMetrics
import CoreMetrics
import Foundation
import Logging

/// The SGE accounting file (`[batch] bdocker_accounting`) kept equal to the store: the header,
/// then the line of every stored record, in id order, each exactly once.
///
/// Invariant (what makes the append exactly-once across crashes):
///
/// 1. A record is committed to the store (not yet appended) before its line is written, with
///    `synchronous = FULL`, so the line of a record the store does not have never reaches the
///    file, even after a power cut. (The confirming commit of point 2 may lag: losing it only
///    leaves lines that the next repair confirms again.)
/// 2. Lines are appended only by this type, only for records not yet appended, all of them, in
///    id order, in one `write` followed by `fdatasync`; only then are they marked appended and
///    `accounting_file.end_offset` moved past them (one transaction).
///
/// So the records marked appended are always an id-ordered prefix, the file's first
/// `end_offset` bytes are exactly the header and their lines, and whatever follows `end_offset`
/// is a byte-prefix of the lines of the unmarked records, in id order: complete lines from a
/// crash between the write and the mark, then possibly one torn line from a crash (or a full
/// disk) during the write. `repair()` reads only that tail: it marks the complete lines,
/// truncates the torn one, and the next append writes what is still missing. A line is never
/// doubled (marked lines are never written again) and never lost (unmarked ones are).
///
/// Anything else in the file (a shorter file, other bytes at or after `end_offset`) means
/// someone else wrote or cut it; bdocker stops with a message rather than guess. A file that is
/// missing or empty (rotated away) is begun anew with the header.
///
/// A value type: the ledger hands it to its I/O queue and takes the updated copy back, so
/// exactly one copy is live and all of its I/O is serial.
struct AccountingFile: Sendable {
    let path: String
    let store: AccountingStore
    let logger: Logger
    private var descriptor: Int32 = -1
    /// `accounting_file.end_offset` as last read or written.
    private var confirmedEnd: Int64 = 0
    /// True whenever the file may differ from what the store says: before the first repair,
    /// and from a write until its lines are confirmed. The next append repairs first.
    private var needsRepair = true

    static let header = Array(SGEAccountingRecord.fileHeader.utf8)

    /// Times each fdatasync (the metric `bdocker_accounting_file_sync_duration_seconds`).
    let syncTimer: CoreMetrics.Timer?

    init(path: String, store: AccountingStore, logger: Logger, syncTimer: CoreMetrics.Timer? = nil) {
        self.path = path
        self.store = store
        self.logger = logger
        self.syncTimer = syncTimer
    }

    /// At start: repairs the file (one bdocker cannot vouch for stops the daemon here), then
    /// appends what a crash left unwritten. That append failing (a full disk) does not stop the
    /// daemon: it is returned, the records stay in the store, and a later append writes them.
    mutating func start() throws(BDockerError) -> BDockerError? {
        if needsRepair || !isAsConfirmed() {
            try repair()
        }
        do {
            try appendPending()
            return nil
        } catch {
            logger.error("accounting file \(path): \(error.message); the records not yet in it are written with the next append")
            return error
        }
    }

    /// Appends the lines of all records not yet in the file, repairing first if needed.
    mutating func appendPending() throws(BDockerError) {
        if needsRepair || !isAsConfirmed() {
            try repair()
        }
        let pending = try store.pendingLines()
        guard !pending.isEmpty else { return }
        var bytes: [UInt8] = []
        var placed: [(id: Int64, offset: Int64)] = []
        for entry in pending {
            placed.append((entry.id, confirmedEnd + Int64(bytes.count)))
            bytes += entry.line.utf8
            bytes.append(UInt8(ascii: "\n"))
        }
        needsRepair = true
        try append(bytes)
        try sync()
        let end = confirmedEnd + Int64(bytes.count)
        try store.confirm(placed, end: end)
        confirmedEnd = end
        needsRepair = false
    }

    /// Brings file and store into agreement after a crash or a failed write (see the invariant
    /// above); at start and whenever `needsRepair` is set. Reads only the confirmed last line
    /// and what follows it.
    private mutating func repair() throws(BDockerError) {
        try openCurrentFile()
        let size = try fileSize()
        let state = try store.fileState()
        if size <= Int64(Self.header.count) {
            let content = try readBytes(at: 0, count: Int(size))
            if state == AccountingStore.FileState(endOffset: Int64(Self.header.count), lastRecordID: nil) && content == Self.header {
                confirmedEnd = size
            } else if Self.header.starts(with: content) {
                // New, emptied by a rotation, or cut short while we wrote the header.
                try beginFile(replacing: state)
            } else {
                throw foreign("holds \(size) bytes that are not the accounting header")
            }
        } else {
            guard let state else {
                throw foreign("already exists, and this database has never written to it")
            }
            try reconcileTail(size: size, state: state)
        }
        needsRepair = false
    }

    /// Releases the file (and its lock).
    mutating func closeFile() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        needsRepair = true
    }

    // MARK: - Repair steps

    private mutating func beginFile(replacing state: AccountingStore.FileState?) throws(BDockerError) {
        if let state, state.lastRecordID != nil {
            logger.warning("accounting file \(path) is missing or empty (rotated?); beginning a new one")
        }
        guard ftruncate(descriptor, 0) == 0 else { throw ioError("truncating") }
        try append(Self.header)
        try sync()
        try store.beginFile(path: path, headerBytes: Int64(Self.header.count))
        confirmedEnd = Int64(Self.header.count)
    }

    private mutating func reconcileTail(size: Int64, state: AccountingStore.FileState) throws(BDockerError) {
        let end = state.endOffset
        guard size >= end else {
            throw foreign("is \(size) bytes, shorter than the \(end) bytes bdocker confirmed")
        }
        // The confirmed part must still end with what we wrote last.
        let anchor: [UInt8]
        if let last = state.lastRecordID {
            guard let line = try store.line(ofRecord: last) else {
                throw .internalFault("the accounting store names record \(last) as the last one in \(path), but it has no such record")
            }
            anchor = Array(line.utf8) + [UInt8(ascii: "\n")]
        } else {
            anchor = Self.header
        }
        guard end >= Int64(anchor.count), try readBytes(at: end - Int64(anchor.count), count: anchor.count) == anchor else {
            throw foreign("does not end its first \(end) bytes with the line bdocker confirmed last")
        }
        confirmedEnd = end
        guard size > end else { return }

        let pending = try store.pendingLines()
        let expected = pending.reduce(0) { $0 + $1.line.utf8.count + 1 }
        guard size - end <= Int64(expected) else {
            throw foreign("has \(size - end) bytes after offset \(end), more than the records waiting for it")
        }
        let tail = try readBytes(at: end, count: Int(size - end))
        var found: [(id: Int64, offset: Int64)] = []
        var start = tail.startIndex
        while let newline = tail[start...].firstIndex(of: UInt8(ascii: "\n")) {
            guard found.count < pending.count, tail[start..<newline].elementsEqual(pending[found.count].line.utf8) else {
                throw foreign("has a line at offset \(end + Int64(start)) that is not the next stored record")
            }
            found.append((pending[found.count].id, end + Int64(start)))
            start = newline + 1
        }
        let torn = tail[start...]
        if !torn.isEmpty {
            guard found.count < pending.count, pending[found.count].line.utf8.starts(with: torn) else {
                throw foreign("ends with \(torn.count) bytes that are not part of a stored record")
            }
            logger.warning("accounting file \(path): removing a torn last line (\(torn.count) bytes, an interrupted append); it is written again")
            guard ftruncate(descriptor, off_t(end + Int64(start))) == 0 else { throw ioError("truncating the torn line of") }
        }
        // The lines found were written but maybe never synced: sync before saying they are in.
        try sync()
        try store.confirm(found, end: end + Int64(start))
        confirmedEnd = end + Int64(start)
        if !found.isEmpty {
            logger.notice("accounting file \(path): confirmed \(found.count) line(s) appended before an interruption")
        }
    }

    // MARK: - File access

    /// Opens the file at `path`, again if it was replaced or moved away since we opened it.
    private mutating func openCurrentFile() throws(BDockerError) {
        if descriptor >= 0 {
            var atPath = stat(), held = stat()
            if stat(path, &atPath) == 0, fstat(descriptor, &held) == 0,
               atPath.st_dev == held.st_dev, atPath.st_ino == held.st_ino {
                return
            }
            closeFile()
        }
        var created = false
        var fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_CREAT | O_EXCL, 0o644)
            created = fd >= 0
        }
        guard fd >= 0 else { throw ioError("opening") }
        // One appender per file: a second daemon on the same file would break exactly-once.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw .unavailable("accounting file \(path) is locked by another bdockerd; only one accounting daemon may append to it")
        }
        descriptor = fd
        if created {
            // The new name must survive a power cut too.
            let directory = (path as NSString).deletingLastPathComponent
            let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dirFD >= 0 {
                fsync(dirFD)
                close(dirFD)
            }
        }
    }

    /// Whether the file at `path` is still the one we hold, exactly as long as confirmed.
    private func isAsConfirmed() -> Bool {
        var atPath = stat(), held = stat()
        guard descriptor >= 0, stat(path, &atPath) == 0, fstat(descriptor, &held) == 0 else { return false }
        return atPath.st_dev == held.st_dev && atPath.st_ino == held.st_ino && Int64(held.st_size) == confirmedEnd
    }

    private func fileSize() throws(BDockerError) -> Int64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ioError("reading the size of") }
        return Int64(info.st_size)
    }

    private func readBytes(at offset: Int64, count: Int) throws(BDockerError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw n == 0 ? foreign("changed while bdocker read it") : ioError("reading") }
            done += n
        }
        return bytes
    }

    /// Appends all of `bytes` (O_APPEND: at the end, whatever the offset).
    private func append(_ bytes: [UInt8]) throws(BDockerError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ioError("appending to") }
            done += n
        }
    }

    /// fdatasync: the data and the new size reach the disk; the modification time may wait.
    private func sync() throws(BDockerError) {
        let start = ContinuousClock.now
        guard fdatasync(descriptor) == 0 else { throw ioError("syncing") }
        syncTimer?.record(duration: ContinuousClock.now - start)
    }

    private func ioError(_ doing: String) -> BDockerError {
        .internalFault("\(doing) accounting file \(path) failed: \(String(cString: strerror(errno)))")
    }

    private func foreign(_ problem: String) -> BDockerError {
        .internalFault("accounting file \(path) \(problem): it was changed by something other than bdocker. "
            + "Nothing was written to it. Move it aside (bdocker then begins a new file and writes every record "
            + "not yet confirmed), or restore it; `bdocker-acct export` rebuilds it from the store.")
    }
}
