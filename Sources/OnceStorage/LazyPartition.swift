import Synchronization

/// A partition of a recovered topic that is opened, and its log recovered, the first time someone
/// uses it, so a restart costs the metadata files, not a scan of every partition's active segment.
/// Opening holds only this partition's lock.
final class LazyPartition: Sendable {
    let topic: String
    let partition: Int32
    let directory: String
    private let config: TopicConfig
    private let runtime: FileStorageRuntime
    private let log: Mutex<FilePartitionLog?>

    init(topic: String, partition: Int32, directory: String, config: TopicConfig, runtime: FileStorageRuntime) {
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.config = config
        self.runtime = runtime
        self.log = Mutex(nil)
    }

    /// A partition created just now, already open.
    init(opened: FilePartitionLog, config: TopicConfig, runtime: FileStorageRuntime) {
        self.topic = opened.topic
        self.partition = opened.partition
        self.directory = opened.directory
        self.config = config
        self.runtime = runtime
        self.log = Mutex(opened)
    }

    func open() throws -> FilePartitionLog {
        try log.withLock { log in
            if let log { return log }
            let opened = try FilePartitionLog.open(
                topic: topic, partition: partition, directory: directory, config: config, runtime: runtime)
            log = opened
            return opened
        }
    }

    /// The log if someone has opened it; an unopened partition has nothing to sync or close.
    var ifOpen: FilePartitionLog? { log.withLock { $0 } }
}
