// swift-tools-version:6.0
import PackageDescription

// The PostgreSQL dedup store lives in its own package so that depending on OnceClient or
// OnceStreams resolves neither postgres-nio nor what it pulls in (swift-crypto, swift-nio-ssl).
let package = Package(
    name: "once-streams-postgres",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "OnceStreamsPostgres", targets: ["OnceStreamsPostgres"]),
        .executable(name: "once-postgres-dedup", targets: ["OnceStreamsPostgresDemo"]),
    ],
    dependencies: [
        .package(name: "once", path: "../.."),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "OnceStreamsPostgres",
            dependencies: [
                .product(name: "OnceStreams", package: "once"),
                .product(name: "OnceClient", package: "once"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "OnceStreamsPostgresDemo",
            dependencies: [
                "OnceStreamsPostgres",
                .product(name: "OnceStreams", package: "once"),
                .product(name: "OnceClient", package: "once"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "OnceStreamsPostgresTests",
            dependencies: [
                "OnceStreamsPostgres",
                .product(name: "OnceStreams", package: "once"),
                .product(name: "OnceClient", package: "once"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
