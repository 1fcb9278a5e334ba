import KafkaProtocol
import OnceStorage

/// ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset at a timestamp.
extension Broker {
    func listOffsets(_ req: ListOffsetsRequest, _ request: Request) -> ListOffsetsResponse {
        var response = ListOffsetsResponse()
        let readCommitted = req.isolationLevel == 1
        let auth = authorization(request)
        response.topics = req.topics.map { t in
            var topic = ListOffsetsResponse.ListOffsetsTopicResponse()
            topic.name = t.name
            let allowed = auth.allowsTopic(.describe, t.name)
            topic.partitions = t.partitions.map { p in
                var result = ListOffsetsResponse.ListOffsetsPartitionResponse()
                result.partitionIndex = p.partitionIndex
                guard allowed else {
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    metrics.error(.listOffsets, .topicAuthorizationFailed)
                    return result
                }
                guard let log = storage.partition(topic: t.name, partition: p.partitionIndex) else {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    metrics.error(.listOffsets, .unknownTopicOrPartition)
                    return result
                }
                if let code = leadershipRefusal(t.name, p.partitionIndex, currentLeaderEpoch: p.currentLeaderEpoch) {
                    result.errorCode = code.rawValue
                    metrics.error(.listOffsets, code)
                    return result
                }
                do {
                    switch p.timestamp {
                    case ListOffsetsTimestamp.earliest:
                        result.offset = log.logStartOffset
                    case ListOffsetsTimestamp.latest:
                        result.offset = try visibleEnd(t.name, p.partitionIndex, log, readCommitted: readCommitted)
                    case ListOffsetsTimestamp.maxTimestamp:
                        if let found = log.maxTimestamp() {
                            let record = try firstRecord(in: log, batchAt: found.offset) { $0 >= found.timestamp }
                            result.offset = record?.offset ?? found.offset
                            result.timestamp = record?.timestamp ?? found.timestamp
                        }
                    default:
                        if let found = try log.offset(forTimestamp: p.timestamp) {
                            let record = try firstRecord(in: log, batchAt: found.offset) { $0 >= p.timestamp }
                            result.offset = record?.offset ?? found.offset
                            result.timestamp = record?.timestamp ?? found.timestamp
                        }
                    }
                    // As Kafka: an offset found at or past what this isolation level may read (the
                    // LSO for read_committed, the high watermark otherwise) is not an answer.
                    if p.timestamp != ListOffsetsTimestamp.earliest && p.timestamp != ListOffsetsTimestamp.latest,
                        result.offset >= (try visibleEnd(t.name, p.partitionIndex, log, readCommitted: readCommitted))
                    {
                        result.offset = -1
                        result.timestamp = -1
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
}

extension Broker {
    /// The end a consumer of this isolation level may read to: the LSO or the high watermark.
    func visibleEnd(_ topic: String, _ partition: Int32, _ log: any PartitionLog, readCommitted: Bool) throws -> Int64 {
        readCommitted ? try stableView(topic, partition, from: 0).lastStableOffset : log.highWatermark
    }

    /// Storage finds the batch; the answer is a record: the first one in that batch whose timestamp
    /// satisfies `matches`. Only this lookup reads records, never the produce or fetch path. Nil for
    /// a compressed batch (its records are not decompressed here), where the batch's first offset
    /// stands in, which a consumer seeking there still reads from without skipping anything.
    func firstRecord(in log: any PartitionLog, batchAt offset: Int64, where matches: (Int64) -> Bool) throws
        -> (offset: Int64, timestamp: Int64)?
    {
        var bytes = try log.read(from: offset, maxBytes: 1, limitOffset: .max)
        guard bytes.readableBytes > 0,
            let header = try? RecordBatchHeader(reading: bytes, at: bytes.readerIndex), header.compression == .none,
            let batch = try? RecordBatch.decode(from: &bytes)
        else { return nil }
        for record in batch.records where batch.offset(of: record) >= offset && matches(batch.timestamp(of: record)) {
            return (batch.offset(of: record), batch.timestamp(of: record))
        }
        return nil
    }
}

/// ListOffsets' special timestamps.
enum ListOffsetsTimestamp {
    static let latest: Int64 = -1
    static let earliest: Int64 = -2
    static let maxTimestamp: Int64 = -3
}
