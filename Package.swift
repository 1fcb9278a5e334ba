// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "once",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "once", targets: ["once"]),
        .library(name: "OnceBroker", targets: ["OnceBroker"]),
        .library(name: "OnceClient", targets: ["OnceClient"]),
        .library(name: "KafkaProtocol", targets: ["KafkaProtocol"]),
        .library(name: "OnceStreams", targets: ["OnceStreams"]),
        .library(name: "OnceCheck", targets: ["OnceCheck"]),
        .library(name: "OnceVerify", targets: ["OnceVerify"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // TLS listeners and TLS client connections; it carries its own (prefixed) BoringSSL.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .target(name: "CCRC32C"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Kafka's other record codecs, through KafkaProtocol: the broker inflates every produced batch to
        // validate it, OnceClient compresses and inflates with them.
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSnappy", pkgConfig: "snappy", providers: [.apt(["libsnappy-dev"])]),
        // SCRAM's HMAC, SHA-2 and PBKDF2 from the system's OpenSSL, so no Swift crypto package is resolved.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // The PostgreSQL storage engine talks to the database through the system's libpq, so no
        // Swift PostgreSQL package is resolved by anything that depends on OnceClient.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(
            name: "KafkaProtocol",
            dependencies: [
                "CCRC32C", "CZlib", "CLZ4", "CZstd", "CSnappy",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(name: "OnceCore"),
        .target(name: "OnceCrypto", dependencies: ["CLibCrypto", "OnceCore"]),
        // History in, anomalies out: the standard library only, so a simulator can link it too.
        .target(name: "OnceCheck"),
        .target(
            name: "OnceVerify",
            dependencies: [
                "OnceClient", "OnceCheck",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "OnceStorage",
            dependencies: [
                "KafkaProtocol", "OnceCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "OncePostgres",
            dependencies: [
                "CLibPQ", "OnceStorage", "KafkaProtocol", "OnceCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "OnceBroker",
            dependencies: [
                "KafkaProtocol", "OnceCore", "OnceCrypto", "OnceStorage", "OncePostgres",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "OnceClient",
            dependencies: [
                "KafkaProtocol", "OnceCore", "OnceCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "OnceStreams",
            dependencies: [
                "OnceClient", "CSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The web console: HTTP over NIOHTTP1, which OnceBroker links already, so no package is added.
        .target(
            name: "OnceConsole",
            dependencies: [
                "OnceBroker", "KafkaProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "once",
            dependencies: [
                "OnceBroker", "OnceConsole", "OnceClient", "OnceStreams", "OnceVerify", "OnceCheck", "KafkaProtocol", "OnceCore", "OnceCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "KafkaProtocolTests",
            dependencies: ["KafkaProtocol", "OnceCore", "CZlib", "CLZ4", "CZstd", "CSnappy"],
            exclude: ["Fixtures/capture_client_frames.py", "Fixtures/kafka_python_encodings.py"]
        ),
        .testTarget(name: "OnceStorageTests", dependencies: ["OnceStorage", "OncePostgres", "KafkaProtocol"]),
        .testTarget(
            name: "OnceBrokerTests",
            dependencies: [
                "OnceBroker", "OnceCore", "OnceStorage", "KafkaProtocol", "OnceCheck",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "OnceCoreTests", dependencies: ["OnceCore"]),
        .testTarget(
            name: "OnceConsoleTests",
            dependencies: [
                "OnceConsole", "OnceBroker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "OnceCryptoTests", dependencies: ["OnceCrypto", "OnceCore"]),
        .testTarget(name: "OnceCheckTests", dependencies: ["OnceCheck"]),
        .testTarget(name: "OnceVerifyTests", dependencies: ["OnceVerify", "OnceCheck"]),
        .testTarget(
            name: "OnceStreamsTests",
            dependencies: [
                "OnceStreams", "OnceClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "OnceClientTests",
            dependencies: [
                "OnceClient", "KafkaProtocol",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
)
