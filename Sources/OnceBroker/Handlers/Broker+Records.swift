import Foundation
import Glibc
import KafkaProtocol
import OnceStorage

/// DeleteRecords and DescribeLogDirs: what the log holds and where it starts.
extension Broker {
    /// DeleteRecords' "up to the high watermark" offset.
    static let deleteToHighWatermark: Int64 = -1

    /// DeleteRecords: moves each partition's log start offset forward, durably, with Kafka's
    /// checks (Partition.deleteRecordsOnLeader). Consumers positioned below the new start get
    /// OFFSET_OUT_OF_RANGE and reset; ListOffsets earliest answers the new start.
    func deleteRecords(_ req: DeleteRecordsRequest, _ request: Request) -> DeleteRecordsResponse {
        var response = DeleteRecordsResponse()
        let auth = authorization(request)
        response.topics = req.topics.map { t in
            var topic = DeleteRecordsResponse.DeleteRecordsTopicResult()
            topic.name = t.name
            let allowed = auth.allowsTopic(.delete, t.name)
            let meta = storage.topic(named: t.name)
            topic.partitions = t.partitions.map { p in
                var result = DeleteRecordsResponse.DeleteRecordsPartitionResult()
                result.partitionIndex = p.partitionIndex
                result.lowWatermark = -1
                guard allowed else {
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    metrics.error(.deleteRecords, .topicAuthorizationFailed)
                    return result
                }
                do {
                    result.lowWatermark = try deleteRecords(topic: meta, name: t.name, partition: p.partitionIndex, before: p.offset)
                } catch let refusal as AdminRefusal {
                    result.errorCode = refusal.code.rawValue
                    logger.info("delete records refused", metadata: [
                        "topic": "\(t.name)", "partition": "\(p.partitionIndex)", "reason": "\(refusal.message)",
                    ])
                } catch {
                    result.errorCode = errorCode(for: error).0.rawValue
                }
                if result.errorCode != 0 { metrics.error(.deleteRecords, ErrorCode(result.errorCode)) }
                return result
            }
            return topic
        }
        return response
    }

    /// Returns the new low watermark (log start offset).
    private func deleteRecords(topic meta: TopicMetadata?, name: String, partition: Int32, before offset: Int64) throws -> Int64 {
        if InternalTopics.names.contains(name) {
            throw AdminRefusal(code: .invalidTopicException, message: "Cannot delete records of internal topic \(name)")
        }
        guard let meta, let log = storage.partition(topic: name, partition: partition) else {
            throw AdminRefusal(code: .unknownTopicOrPartition, message: "\(name)-\(partition) does not exist")
        }
        if let code = leadershipRefusal(name, partition) {
            throw AdminRefusal(code: code, message: "this broker does not lead \(name)-\(partition)")
        }
        // Deleting by offset would undo what compaction keeps (the latest value of each key).
        guard Self.topicConfig(meta.configs).deletesByRetention else {
            throw AdminRefusal(
                code: .policyViolation, message: "Records of partition \(name)-\(partition) can not be deleted due to the configured policy")
        }
        let highWatermark = log.logEndOffset
        let target = offset == Self.deleteToHighWatermark ? highWatermark : offset
        guard target >= 0 else {
            throw AdminRefusal(code: .offsetOutOfRange, message: "The offset \(target) for partition \(name)-\(partition) is not valid")
        }
        guard target <= highWatermark else {
            throw AdminRefusal(
                code: .offsetOutOfRange,
                message: "Cannot increment the log start offset to \(target) of partition \(name)-\(partition) since it is larger than the high watermark \(highWatermark)")
        }
        let start = try log.advanceLogStart(to: target)
        logger.info("deleted records", metadata: ["topic": "\(name)", "partition": "\(partition)", "logStartOffset": "\(start)"])
        return start
    }

    /// DescribeLogDirs: the one data directory, the bytes each partition's batches take, and the
    /// file system's total and usable space.
    func describeLogDirs(_ req: DescribeLogDirsRequest, _ request: Request) -> DescribeLogDirsResponse {
        // Cluster DESCRIBE; without it Kafka answers no directories (and, from v3, the error).
        guard authorization(request).allowsCluster(.describe) else {
            var refused = DescribeLogDirsResponse()
            if request.version >= 3 { refused.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue }
            return refused
        }
        // Null asks for every partition; named topics that do not exist are left out, as Kafka does.
        let wanted: [(TopicMetadata, [Int32])]
        if let topics = req.topics {
            wanted = topics.compactMap { t in storage.topic(named: t.topic).map { ($0, t.partitions) } }
        } else {
            wanted = storage.topics().map { ($0, Array(0..<$0.partitionCount)) }
        }
        var dir = DescribeLogDirsResponse.DescribeLogDirsResult()
        dir.logDir = config.storage == .file ? URL(fileURLWithPath: config.dataDirectory).standardizedFileURL.path : config.storage.rawValue
        if config.storage == .file, let space = Self.fileSystemSpace(config.dataDirectory) {
            dir.totalBytes = space.total
            dir.usableBytes = space.usable
        }
        dir.topics = wanted.map { meta, partitions in
            var topic = DescribeLogDirsResponse.DescribeLogDirsTopic()
            topic.name = meta.name
            topic.partitions = partitions.compactMap { index in
                guard let log = storage.partition(topic: meta.name, partition: index) else { return nil }
                var p = DescribeLogDirsResponse.DescribeLogDirsPartition()
                p.partitionIndex = index
                p.partitionSize = log.sizeInBytes
                return p
            }
            return topic
        }
        var response = DescribeLogDirsResponse()
        response.results = [dir]
        return response
    }

    private static func fileSystemSpace(_ path: String) -> (total: Int64, usable: Int64)? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        let block = Int64(stats.f_frsize)
        return (Int64(stats.f_blocks) * block, Int64(stats.f_bavail) * block)
    }
}
