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
    ],
    targets: [
        // Linux calls the Glibc module hides (O_PATH, pipe2, posix_spawn chdir).
        .target(name: "CBDSystem"),
        // Typed errors and small helpers every module shares.
        .target(name: "BDCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        // INI reader and validated settings.
        .target(name: "BDConfig", dependencies: ["BDCore"]),
        // SQLite (GRDB) database setup and the migrator over migrations/*.sql.
        .target(name: "BDStore", dependencies: [
            "BDCore", "BDConfig",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // TokenController and the authorization rules.
        .target(name: "BDCredentials", dependencies: [
            "BDCore", "BDStore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Working-node and accounting controllers, cgroups, monitor, SGE accounting format.
        .target(name: "BDBatch", dependencies: [
            "BDCore", "BDConfig", "BDStore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Docker Engine API client.
        .target(name: "BDDocker", dependencies: [
            "BDCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The client side of the daemons' HTTP API.
        .target(name: "BDClient", dependencies: [
            "BDCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // HTTP routes of both daemon roles; the one place errors become status codes.
        .target(name: "BDAPI", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDDocker", "BDClient", "CBDSystem",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "bdockerd", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDAPI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "bdocker", dependencies: [
            "BDCore", "BDConfig", "BDClient",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        .executableTarget(name: "bdocker-acct", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDBatch",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // Benchmarks that print numbers: `swift run -c release bdocker-bench monitor`.
        .executableTarget(name: "bdocker-bench", dependencies: [
            "BDBatch", "BDConfig", "BDStore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Accounting benchmark: `swift build -c release && .build/release/bench-accounting`.
        .executableTarget(name: "bench-accounting", dependencies: [
            "BDBatch", "BDClient", "BDCore", "BDStore",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // What both test targets share: temp dirs, test configs, in-process daemons, the test
        // environment and the `.requires(...)` trait that skips a test when its part is missing.
        .target(name: "BDTestSupport", dependencies: [
            "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDAPI",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/BDTestSupport"),
        // Pure tests: no root, no engine, no cgroups; `swift test` runs them anywhere in seconds.
        .testTarget(name: "BDockerUnitTests", dependencies: [
            "BDTestSupport", "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDDocker", "BDAPI", "BDClient",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Tests of the real parts: Docker engine, registry, cgroups v1, Grid Engine, real users.
        // Each declares what it needs and is skipped, with the reason, where that is missing.
        .testTarget(name: "BDockerIntegrationTests", dependencies: [
            "BDTestSupport", "BDCore", "BDConfig", "BDStore", "BDCredentials", "BDBatch", "BDDocker", "BDAPI", "BDClient",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
