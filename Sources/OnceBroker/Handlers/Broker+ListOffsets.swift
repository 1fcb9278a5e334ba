import KafkaProtocol
import OnceStorage

/// ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset at a timestamp.
extension Broker {
    func listOffsets(_ req: ListOffsetsRequest, _ request: Request) -> ListOffsetsResponse {
        var response = ListOffsetsResponse()
        let readCommitted = req.isolationLevel == 1
        response.topics = req.topics.map { t in
            var topic = ListOffsetsResponse.ListOffsetsTopicResponse()
            topic.name = t.name
            topic.partitions = t.partitions.map { p in
                var result = ListOffsetsResponse.ListOffsetsPartitionResponse()
                result.partitionIndex = p.partitionIndex
                guard let log = storage.partition(topic: t.name, partition: p.partitionIndex) else {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    metrics.error(.listOffsets, .unknownTopicOrPartition)
                    return result
                }
                do {
                    switch p.timestamp {
                    case ListOffsetsTimestamp.earliest:
                        result.offset = log.logStartOffset
                    case ListOffsetsTimestamp.latest:
                        result.offset = readCommitted ? lastStableOffset(log) : log.logEndOffset
                    case ListOffsetsTimestamp.maxTimestamp:
                        if let found = log.maxTimestamp() {
                            result.offset = found.offset
                            result.timestamp = found.timestamp
                        }
                    default:
                        if let found = try log.offset(forTimestamp: p.timestamp) {
                            result.offset = found.offset
                            result.timestamp = found.timestamp
                        }
                    }
                } catch {
                    let (code, _) = errorCode(for: error)
                    result.errorCode = code.rawValue
                    metrics.error(.listOffsets, code)
                }
                return result
            }
            return topic
        }
        return response
    }

    /// The offset below which every record is decided (committed or aborted). Without transactions
    /// that is the log end; the transaction layer will lower it to the first open transaction.
    func lastStableOffset(_ log: any PartitionLog) -> Int64 {
        log.logEndOffset
    }
}

/// ListOffsets' special timestamps.
enum ListOffsetsTimestamp {
    static let latest: Int64 = -1
    static let earliest: Int64 = -2
    static let maxTimestamp: Int64 = -3
}
