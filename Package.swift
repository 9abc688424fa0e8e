// swift-tools-version:6.2
import PackageDescription

// Settings for our own targets only; dependencies keep their warnings to themselves.
var strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
if Context.environment["CI"] != nil {
    strict.append(.treatAllWarnings(as: .error))
}

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

let package = Package(
    name: "portcullis",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "portcullis", targets: ["portcullis"]),
        .executable(name: "echo-upstream", targets: ["echo-upstream"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CPortcullisCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CPortcullisOpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CPortcullisArgon2", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        .target(
            name: "PortcullisCrypto",
            dependencies: ["CPortcullisOpenSSL", "CPortcullisArgon2", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "PortcullisCore", dependencies: ["PortcullisCrypto", "Yams"]),
        .target(name: "PortcullisUpstream", dependencies: ["CPortcullisCurl", nioCore, logging]),
        .target(
            name: "PortcullisServer",
            dependencies: [
                "PortcullisCore", "PortcullisUpstream", "PortcullisCrypto", nioCore, nioPosix, nioHTTP1, logging,
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .executableTarget(
            name: "portcullis",
            dependencies: [
                "PortcullisServer", "PortcullisCore", "PortcullisUpstream", "PortcullisCrypto", logging,
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "echo-upstream", dependencies: [nioCore, nioPosix, nioHTTP1]),
        .executableTarget(name: "token-bench", dependencies: ["PortcullisCore", "PortcullisCrypto"]),
        .target(name: "PortcullisFuzzing", dependencies: ["PortcullisCore", "PortcullisCrypto"]),
        .testTarget(name: "PortcullisCryptoTests", dependencies: ["PortcullisCrypto"]),
        .testTarget(name: "PortcullisCoreTests", dependencies: ["PortcullisCore", "PortcullisCrypto"]),
        .testTarget(
            name: "PortcullisServerTests",
            dependencies: [
                "PortcullisServer", "PortcullisCore", "PortcullisUpstream", nioCore, nioHTTP1, logging,
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(name: "PortcullisUpstreamTests", dependencies: ["PortcullisUpstream", nioCore, nioPosix, logging]),
        .testTarget(name: "PortcullisFuzzingTests", dependencies: ["PortcullisFuzzing"]),
    ]
)

// `make fuzz` builds the libFuzzer targets of the parsers (fuzz/README.md); they have no `main`
// of their own, so they exist only in that build.
if Context.environment["PORTCULLIS_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(name: "portcullis-fuzz", dependencies: ["PortcullisFuzzing"]))
    package.products.append(.executable(name: "portcullis-fuzz", targets: ["portcullis-fuzz"]))
}

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + strict
}
