import Synchronization

/// A partition of a recovered topic that is opened, and its log recovered, the first time someone
/// uses it, so a restart costs the metadata files, not a scan of every partition's active segment.
/// Opening holds only this partition's lock.
final class LazyPartition: Sendable {
    let topic: String
    let partition: Int32
    let directory: String
    private let runtime: FileStorageRuntime
    private let log: Mutex<(log: FilePartitionLog?, deleted: Bool, config: TopicConfig)>

    init(topic: String, partition: Int32, directory: String, config: TopicConfig, runtime: FileStorageRuntime) {
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.runtime = runtime
        self.log = Mutex((nil, false, config))
    }

    /// A partition created just now, already open.
    init(opened: FilePartitionLog, config: TopicConfig, runtime: FileStorageRuntime) {
        self.topic = opened.topic
        self.partition = opened.partition
        self.directory = opened.directory
        self.runtime = runtime
        self.log = Mutex((opened, false, config))
    }

    func open() throws -> FilePartitionLog {
        try log.withLock { slot in
            if let log = slot.log { return log }
            // A caller that found the slot just before its topic was deleted must not recreate
            // the directory the delete is removing.
            if slot.deleted { throw StorageError.unknownTopic(topic) }
            let opened = try FilePartitionLog.open(
                topic: topic, partition: partition, directory: directory, config: slot.config, runtime: runtime)
            slot.log = opened
            return opened
        }
    }

    /// The topic is gone: an open log fails its users from now on, an unopened one never opens.
    func markDeleted() {
        log.withLock { slot in
            slot.deleted = true
            slot.log?.markDeleted()
        }
    }

    /// A topic config change: the open log applies it now, an unopened one when it opens.
    func updateConfig(_ config: TopicConfig) {
        log.withLock { slot in
            slot.config = config
            slot.log?.updateConfig(config)
        }
    }

    /// The config the partition applies (or will, once opened).
    var config: TopicConfig { log.withLock { $0.config } }

    /// The log if someone has opened it; an unopened partition has nothing to sync or close.
    var ifOpen: FilePartitionLog? { log.withLock { $0.log } }
}
