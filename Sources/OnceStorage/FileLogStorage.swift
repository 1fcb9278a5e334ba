import Dispatch
import Foundation
import KafkaProtocol
import Logging
import NIOCore
import Synchronization

/// The default engine: one directory per partition (`<dir>/<topic>-<partition>/`) of segment
/// files, and one metadata file per topic under `<dir>/__topics/`. Each partition is recovered when
/// first used (so a restart does not wait for thousands of them), and a kill -9 at any point loses
/// at most what was not yet durable under the flush policy.
public final class FileLogStorage: LogStorage {
    public let directory: String
    private let runtime: FileStorageRuntime
    /// Where topic ids come from (the system generator unless a caller injects one).
    private let random: RandomSource
    var logger: Logger { runtime.logger }

    struct Topic {
        var metadata: TopicMetadata
        var partitions: [LazyPartition]
    }

    struct State {
        var topics: [String: Topic] = [:]
        /// Names whose directories are being made or removed outside the lock; creating one of
        /// them is refused as existing until that work is done.
        var reserved: Set<String> = []
        var isOpen = true
        var flushTimer: FlushTimer?
        var cleaner: (timer: FlushTimer, throttle: CleanerThrottle)?
    }

    let state = Mutex(State())
    let cleanerStatsBox = CleanerStatsBox()

    var isOpen: Bool { state.withLock { $0.isOpen } }

    public static let defaultMaxOpenFiles = 1000

    /// Segment descriptors the handle cache holds now, and how many open(2) calls it has made.
    public var openFileStats: (open: Int, opens: Int) { (runtime.files.openCount, runtime.files.openCalls) }

    private var topicsDirectory: String { directory + "/__topics" }
    private var stateDirectory: String { directory + "/__state" }

    private func partitionDirectory(_ topic: String, _ partition: Int32) -> String {
        directory + "/" + topic + "-" + String(partition)
    }

    private func metadataPath(_ topic: String) -> String {
        topicsDirectory + "/" + topic + ".meta"
    }

    /// Opens the data directory, creating it if needed, and reads every topic's metadata; partitions
    /// recover on first use.
    /// - Parameters:
    ///   - maxOpenFiles: segment descriptors kept open at once (least recently used are closed and
    ///     reopened on demand), so partitions never exhaust the process's descriptors.
    ///   - io: the threads fsyncs and index writes run on (the broker's `--io-threads` pool).
    public init(
        directory: String, flushPolicy: FlushPolicy = .none, maxOpenFiles: Int = FileLogStorage.defaultMaxOpenFiles,
        logger: Logger = Logger(label: "once.storage"), random: RandomSource = .system, io: BlockingIO = .shared
    ) throws {
        self.directory = directory
        self.random = random
        self.runtime = FileStorageRuntime(flushPolicy: flushPolicy, maxOpenFiles: maxOpenFiles, logger: logger, io: io)
        let fileManager = FileManager.default
        do {
            try fileManager.createDirectory(atPath: topicsDirectory, withIntermediateDirectories: true)
            try fileManager.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw StorageError.io("mkdir \(topicsDirectory): \(error)")
        }
        var topics: [String: Topic] = [:]
        for name in try Self.list(topicsDirectory) {
            let path = topicsDirectory + "/" + name
            if name.hasSuffix(".tmp") {
                try PosixFile.remove(path)
                continue
            }
            guard name.hasSuffix(".meta") else { continue }
            let metadata = try TopicMetadataFile.decode(try PosixFile.readWhole(path), path: path)
            let config = try TopicConfig(overrides: metadata.configs)
            let partitions = (0..<metadata.partitionCount).map {
                LazyPartition(
                    topic: metadata.name, partition: $0, directory: partitionDirectory(metadata.name, $0),
                    config: config, runtime: runtime)
            }
            topics[metadata.name] = Topic(metadata: metadata, partitions: partitions)
        }
        try removeOrphanPartitions(keeping: topics)
        let total = topics.values.reduce(0) { $0 + $1.partitions.count }
        logger.info("opened log", metadata: ["directory": "\(directory)", "topics": "\(topics.count)", "partitions": "\(total)"])
        state.withLock { $0.topics = topics }
        if case .interval(let milliseconds) = flushPolicy {
            startFlushTimer(every: max(milliseconds, 1))
        }
    }

    private static func list(_ directory: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw StorageError.io("list \(directory): \(error)")
        }
    }

    /// Partition directories whose topic has no metadata file are what a crash in the middle of a
    /// create or delete leaves; no one can reach them, so they go.
    private func removeOrphanPartitions(keeping topics: [String: Topic]) throws {
        for name in try Self.list(directory) {
            guard let dash = name.lastIndex(of: "-"),
                let partition = Int32(name[name.index(after: dash)...]), partition >= 0
            else { continue }
            let topic = String(name[..<dash])
            guard TopicName.validationError(topic) == nil else { continue }
            if let known = topics[topic], partition < known.metadata.partitionCount { continue }
            logger.warning("removing partition directory without a topic", metadata: ["directory": "\(name)"])
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    private func startFlushTimer(every milliseconds: Int64) {
        let timer = FlushTimer(every: milliseconds) { [weak self] in self?.syncAll() }
        state.withLock { $0.flushTimer = timer }
    }

    private func syncAll() {
        let logs = state.withLock { $0.topics.values.flatMap(\.partitions) }
        for log in logs { log.ifOpen?.syncOnce() }
    }

    // MARK: LogStorage

    public func topics() -> [TopicMetadata] {
        state.withLock { $0.topics.values.map(\.metadata) }.sorted { $0.name < $1.name }
    }

    public func topic(named name: String) -> TopicMetadata? {
        state.withLock { $0.topics[name]?.metadata }
    }

    @discardableResult
    public func createTopic(name: String, partitions: Int32, configs: [String: String]) throws -> TopicMetadata {
        if let problem = TopicName.validationError(name) { throw StorageError.invalidConfig(problem) }
        guard partitions > 0 else { throw StorageError.invalidConfig("partition count \(partitions) must be positive") }
        let config = try TopicConfig(overrides: configs)
        // The name is reserved under the lock, the directories are made outside it (thousands of
        // them take seconds, and every other request needs this lock), then the metadata file
        // makes the topic exist. A failure removes everything made, so nothing is left behind.
        try state.withLock { s in
            guard s.isOpen else { throw StorageError.io("storage is closed") }
            guard s.topics[name] == nil, !s.reserved.contains(name) else { throw StorageError.topicExists(name) }
            s.reserved.insert(name)
        }
        let metadata = TopicMetadata(name: name, id: random.uuid(), partitionCount: partitions, configs: configs)
        var logs: [LazyPartition] = []
        do {
            logs.reserveCapacity(Int(partitions))
            for partition in 0..<partitions {
                let path = partitionDirectory(name, partition)
                try? FileManager.default.removeItem(atPath: path)
                let log = try FilePartitionLog.open(
                    topic: name, partition: partition, directory: path, config: config, runtime: runtime)
                logs.append(LazyPartition(opened: log, config: config, runtime: runtime))
            }
            try PosixFile.syncDirectory(directory)
            try state.withLock { s in
                guard s.isOpen else { throw StorageError.io("storage is closed") }
                // Data directories first, metadata last: until the metadata file lands the topic
                // does not exist, and a crash before then leaves orphans that the next open removes.
                try PosixFile.writeAtomically(
                    TopicMetadataFile.encode(metadata), to: metadataPath(name), directory: topicsDirectory)
                s.reserved.remove(name)
                s.topics[name] = Topic(metadata: metadata, partitions: logs)
            }
        } catch {
            for log in logs { log.markDeleted() }
            for partition in 0..<partitions {
                try? FileManager.default.removeItem(atPath: partitionDirectory(name, partition))
            }
            _ = state.withLock { $0.reserved.remove(name) }
            throw error
        }
        logger.info("created topic", metadata: ["topic": "\(name)", "id": "\(metadata.id)", "partitions": "\(partitions)"])
        return metadata
    }

    public func deleteTopic(name: String) throws {
        let partitions = try state.withLock { s in
            guard let topic = s.topics[name] else { throw StorageError.unknownTopic(name) }
            // Metadata first: once it is gone the topic is gone, whatever happens to the data.
            try PosixFile.remove(metadataPath(name))
            try PosixFile.syncDirectory(topicsDirectory)
            s.topics[name] = nil
            s.reserved.insert(name)
            return topic.partitions
        }
        defer { _ = state.withLock { $0.reserved.remove(name) } }
        // Outside the lock: removing thousands of directories takes seconds, and nothing can reach
        // them any more (a crash before they are gone leaves orphans the next open removes).
        for log in partitions {
            log.markDeleted()
            do {
                try FileManager.default.removeItem(atPath: log.directory)
            } catch {
                logger.warning("could not remove partition directory", metadata: ["directory": "\(log.directory)", "error": "\(error)"])
            }
        }
        logger.info("deleted topic", metadata: ["topic": "\(name)"])
    }

    @discardableResult
    public func addPartitions(topic name: String, count: Int32) throws -> TopicMetadata {
        try state.withLock { s in
            guard s.isOpen else { throw StorageError.io("storage is closed") }
            guard var topic = s.topics[name] else { throw StorageError.unknownTopic(name) }
            let current = topic.metadata.partitionCount
            guard count > current else {
                throw StorageError.invalidPartitions("topic '\(name)' has \(current) partitions; the new count must be larger")
            }
            let config = try TopicConfig(overrides: topic.metadata.configs)
            // As in createTopic: directories first, so until the metadata names them they are
            // orphans that the next open removes.
            var logs: [FilePartitionLog] = []
            for partition in current..<count {
                let path = partitionDirectory(name, partition)
                try? FileManager.default.removeItem(atPath: path)
                logs.append(
                    try FilePartitionLog.open(
                        topic: name, partition: partition, directory: path, config: config, runtime: runtime))
            }
            try PosixFile.syncDirectory(directory)
            var metadata = topic.metadata
            metadata.partitionCount = count
            try PosixFile.writeAtomically(
                TopicMetadataFile.encode(metadata), to: metadataPath(name), directory: topicsDirectory)
            topic.metadata = metadata
            topic.partitions += logs.map { LazyPartition(opened: $0, config: config, runtime: runtime) }
            s.topics[name] = topic
            logger.info("added partitions", metadata: ["topic": "\(name)", "partitions": "\(count)"])
            return metadata
        }
    }

    @discardableResult
    public func setTopicConfigs(topic name: String, configs: [String: String]) throws -> TopicMetadata {
        let config = try TopicConfig(overrides: configs)
        return try state.withLock { s in
            guard s.isOpen else { throw StorageError.io("storage is closed") }
            guard var topic = s.topics[name] else { throw StorageError.unknownTopic(name) }
            var metadata = topic.metadata
            metadata.configs = configs
            try PosixFile.writeAtomically(
                TopicMetadataFile.encode(metadata), to: metadataPath(name), directory: topicsDirectory)
            topic.metadata = metadata
            s.topics[name] = topic
            for log in topic.partitions { log.updateConfig(config) }
            return metadata
        }
    }

    public func readState(named name: String) throws -> [UInt8]? {
        try StateName.validate(name)
        let path = stateDirectory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try StateDocument.decode(try PosixFile.readWhole(path), path: path)
    }

    public func writeState(named name: String, _ bytes: [UInt8]) throws {
        try StateName.validate(name)
        try PosixFile.writeAtomically(
            StateDocument.encode(bytes), to: stateDirectory + "/" + name, directory: stateDirectory)
    }

    public func removeState(named name: String) throws {
        try StateName.validate(name)
        let path = stateDirectory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return }
        try PosixFile.remove(path)
        try PosixFile.syncDirectory(stateDirectory)
    }

    public func loadedPartitions() -> [any PartitionLog] {
        let slots = state.withLock { s in s.topics.values.flatMap(\.partitions) }
        return slots.compactMap(\.ifOpen)
    }

    public func partition(topic: String, partition: Int32) -> PartitionLog? {
        let slot: LazyPartition? = state.withLock { s in
            guard let logs = s.topics[topic]?.partitions, partition >= 0, Int(partition) < logs.count else { return nil }
            return logs[Int(partition)]
        }
        guard let slot else { return nil }
        do {
            return try slot.open()
        } catch StorageError.unknownTopic {
            return nil
        } catch {
            logger.error("could not open partition", metadata: ["partition": "\(topic)-\(partition)", "error": "\(error)"])
            return nil
        }
    }

    public func enforceRetention(nowMs: Int64) {
        // Retention opens partitions nobody has used since the restart too: their data still ages.
        let logs = state.withLock { $0.topics.values.flatMap(\.partitions) }
        for slot in logs {
            do {
                try slot.open().enforceRetention(nowMs: nowMs)
            } catch {
                logger.error("could not open partition", metadata: ["partition": "\(slot.topic)-\(slot.partition)", "error": "\(error)"])
            }
        }
    }

    public func close() throws {
        let (logs, timer, cleaner): ([FilePartitionLog], FlushTimer?, (timer: FlushTimer, throttle: CleanerThrottle)?) = state.withLock { s in
            guard s.isOpen else { return ([], nil, nil) }
            s.isOpen = false
            defer { (s.flushTimer, s.cleaner) = (nil, nil) }
            return (s.topics.values.flatMap(\.partitions).compactMap(\.ifOpen), s.flushTimer, s.cleaner)
        }
        timer?.cancel()
        // A pass in progress stops at its next segment (it sees the storage closed) and is waited
        // for, so no cleaner write races the close.
        cleaner?.throttle.stop()
        cleaner?.timer.cancelAndWait()
        var firstError: (any Error)?
        for log in logs {
            do {
                try log.close()
            } catch {
                firstError = firstError ?? error
            }
        }
        runtime.waitForBackgroundWork()
        if let firstError { throw firstError }
    }
}

/// The `.interval` policy's clock: a dispatch timer on its own serial queue, so the fsyncs it
/// triggers run on that queue's thread.
package final class FlushTimer: @unchecked Sendable {
    // A dispatch source is thread-safe; it is only not marked Sendable.
    private let source: any DispatchSourceTimer

    private let queue: DispatchQueue

    package init(every milliseconds: Int64, label: String = "once.storage.flusher", _ tick: @escaping @Sendable () -> Void) {
        queue = DispatchQueue(label: label)
        source = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.milliseconds(Int(milliseconds))
        source.schedule(deadline: .now() + interval, repeating: interval)
        source.setEventHandler(handler: tick)
        source.resume()
    }

    package func cancel() {
        source.cancel()
    }

    /// Cancels and returns once a tick that is running has finished.
    package func cancelAndWait() {
        source.cancel()
        queue.sync {}
    }
}
