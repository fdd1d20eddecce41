// swift-tools-version:6.1
import PackageDescription

// Versions are pinned exactly: this machine (and CI) resolves packages only from local copies
// at fixed versions. swift-crypto is pinned because AsyncHTTPClient would otherwise pull 4.x.
let package = Package(
    name: "bdocker",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bdockerd", targets: ["bdockerd"]),
        .executable(name: "bdocker", targets: ["bdocker"]),
        .executable(name: "bdocker-acct", targets: ["bdocker-acct"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", exact: "2.5.0"),
        // TLS on the accounting daemon and the working node's outbox (already under AsyncHTTPClient).
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
    ],
    targets: [
        // Linux calls the Glibc module hides (O_PATH, pipe2, posix_spawn chdir).
        .target(name: "CBDSystem"),
        // Typed errors and small helpers every module shares.
        .target(name: "BDCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        // INI reader and validated settings.
        .target(name: "BDConfig", dependencies: ["BDCore", .product(name: "Logging", package: "swift-log")]),
        // SQLite (GRDB) database setup and the migrator over migrations/*.sql.
        .target(name: "BDStore", dependencies: [
            "BDCore",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // TokenController, its drivers' registry and the authorization rules.
        .target(name: "BDCredentials", dependencies: [
            "BDCore", "BDStore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Each daemon's metrics: swift-metrics types over a Prometheus registry of its own.
        .target(name: "BDMetrics", dependencies: [
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The accounting daemon's data: the SGE record, its store, ledger, file and reader, and
        // the wire types the working node sends it. All `bdocker-acct` needs.
        .target(name: "BDAccounting", dependencies: [
            "BDCore", "BDStore", "BDMetrics",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // Batch systems: WNController → CgroupsWNController → SGEWNController, their registry,
        // cgroup v1 files, job limits.
        .target(name: "BDBatch", dependencies: [
            "BDCore", "BDConfig", "BDStore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Docker Engine API client (NIOPosix: the hijacked attach, which AsyncHTTPClient cannot make).
        .target(name: "BDDocker", dependencies: [
            "BDCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The client side of the daemons' HTTP API.
        .target(name: "BDClient", dependencies: [
            "BDCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // What a working node does, independent of HTTP: configure/clean, containers, pinned
        // binds, copies through the user's tar, the monitor, usage and the accounting outbox.
        .target(name: "BDWorkingNode", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDDocker", "BDAccounting", "BDClient", "BDMetrics", "CBDSystem",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // How the command lines start and fail: argument errors in one line.
        .target(name: "BDCommandLine", dependencies: [
            "BDCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // HTTP: routes of both roles, the request context and listeners, streaming replies, the
        // one place errors become status codes, and the daemon's wiring.
        .target(name: "BDAPI", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDDocker", "BDAccounting", "BDWorkingNode", "BDMetrics",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            // SIGHUP: the usage report's users file read again.
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            // The usage report's Basic authentication (bcrypt users file).
            .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
            .product(name: "HummingbirdBasicAuth", package: "hummingbird-auth"),
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            // The accounting daemon's TLS listener and the node name in a client certificate.
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ]),
        .executableTarget(name: "bdockerd", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDAPI", "BDCommandLine",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "bdocker", dependencies: [
            "BDCore", "BDConfig", "BDClient", "BDCommandLine",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "bdocker-acct", dependencies: [
            "BDCore", "BDConfig", "BDAccounting", "BDCommandLine",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Benchmarks that print numbers (tools/bench.sh runs them all): monitor, node, accounting, fsync.
        .executableTarget(name: "bdocker-bench", dependencies: [
            "BDAccounting", "BDBatch", "BDClient", "BDConfig", "BDCore", "BDStore", "BDWorkingNode",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // What both test targets share: temp dirs, test configs, in-process daemons, the test
        // environment and the `.requires(...)` trait that skips a test when its part is missing.
        .target(name: "BDTestSupport", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDWorkingNode", "BDAPI", "BDClient",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
        ], path: "Tests/BDTestSupport"),
        // Pure tests: no root, no engine, no cgroups; `swift test` runs them anywhere in seconds.
        .testTarget(name: "BDockerUnitTests", dependencies: [
            "BDTestSupport", "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDAccounting", "BDWorkingNode", "BDDocker", "BDAPI", "BDClient", "BDMetrics",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        // Tests of the real parts: Docker engine, registry, cgroups v1, Grid Engine, real users.
        // Each declares what it needs and is skipped, with the reason, where that is missing.
        .testTarget(name: "BDockerIntegrationTests", dependencies: [
            "BDTestSupport", "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDAccounting", "BDWorkingNode", "BDDocker", "BDAPI", "BDClient",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
