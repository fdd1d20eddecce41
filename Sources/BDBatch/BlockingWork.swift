import BDCore
import NIOPosix

/// Threads for the batch module's blocking file work: cgroup directories, `tasks` writes (the
/// kernel migrates the processes before the write returns) and spool files, which may be on
/// NFS. Configure, clean and the monitor's readings run here, so no thread of Swift's
/// cooperative pool, which serves every request, waits on the kernel.
public enum BlockingWork {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws(BDockerError) -> T) async throws(BDockerError) -> T {
        do {
            return try await pool.runIfActive { try work() }
        } catch let error as BDockerError {
            throw error
        } catch {
            // Only a stopped pool gets here, and the pool is never stopped.
            throw .internalFault("blocking batch work could not run: \(error)")
        }
    }
}
