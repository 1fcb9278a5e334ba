import KafkaProtocol
import NIOCore

extension KafkaClient {
    /// Fetches from each position's partition leader, one request per broker, without a fetch
    /// session. Returns what every broker sent back, possibly no records if `maxWait` ran out.
    public func fetch(
        _ positions: [FetchPosition], isolation: IsolationLevel = .readUncommitted,
        maxWait: Duration = .milliseconds(500), minBytes: Int32 = 1, maxBytes: Int32 = 50 * 1024 * 1024
    ) async throws -> [FetchedPartition] {
        let byPartition = Dictionary(positions.map { ($0.topicPartition, $0) }, uniquingKeysWith: { $1 })
        let byLeader = try await leaders(for: byPartition.keys)
        var requests: [(KafkaConnection, Int16, FetchRequest)] = []
        for (leader, partitions) in byLeader {
            let connection: KafkaConnection
            do {
                connection = try await self.connection(toNode: leader)
            } catch {
                // A leader that cannot be reached (killed, moved away) is looked up again next time.
                forgetLeaders(of: partitions)
                throw error
            }
            let version = try connection.version(for: FetchRequest.self)
            let ids = version >= 13 ? try await resolveTopicIds(Set(partitions.map(\.topic))) : [:]
            var request = FetchRequest()
            request.replicaId = -1
            request.maxWaitMs = maxWait.milliseconds
            request.minBytes = minBytes
            request.maxBytes = maxBytes
            request.isolationLevel = isolation.rawValue
            request.sessionId = 0
            request.sessionEpoch = -1
            request.topics = Dictionary(grouping: partitions, by: \.topic).map { topic, partitions in
                var fetchTopic = FetchRequest.FetchTopic()
                fetchTopic.topic = topic
                fetchTopic.topicId = ids[topic] ?? .zero
                fetchTopic.partitions = partitions.map {
                    let position = byPartition[$0]!
                    var partition = FetchRequest.FetchPartition()
                    partition.partition = $0.partition
                    partition.fetchOffset = position.offset
                    partition.partitionMaxBytes = position.maxBytes
                    return partition
                }
                return fetchTopic
            }
            requests.append((connection, version, request))
        }

        let responses = try await withThrowingTaskGroup(of: FetchResponse.self) { group in
            for (connection, version, request) in requests {
                group.addTask { try await connection.send(request, version: version, brokerWait: maxWait) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var fetched: [FetchedPartition] = []
        for response in responses {
            if let error = KafkaError(errorCode: response.errorCode) { throw error }
            for topic in response.responses {
                let name = topic.topicId != .zero ? (topicName(topic.topicId) ?? topic.topic) : topic.topic
                for partition in topic.partitions {
                    if Self.leaderMoved(partition.errorCode) { forgetLeaders(of: [TopicPartition(name, partition.partitionIndex)]) }
                    fetched.append(
                        FetchedPartition(
                            topicPartition: TopicPartition(name, partition.partitionIndex),
                            error: KafkaError(errorCode: partition.errorCode),
                            highWatermark: partition.highWatermark,
                            lastStableOffset: partition.lastStableOffset,
                            logStartOffset: partition.logStartOffset,
                            abortedTransactions: (partition.abortedTransactions ?? []).map {
                                AbortedTransaction(producerId: $0.producerId, firstOffset: $0.firstOffset)
                            },
                            records: partition.records ?? ByteBuffer()))
                }
            }
        }
        return fetched
    }

    /// The partition errors after which the cached leader is wrong: the next fetch refreshes
    /// metadata for the partition, as Kafka's fetcher does, instead of asking the old leader forever.
    static func leaderMoved(_ code: Int16) -> Bool {
        [ErrorCode.notLeaderOrFollower, .leaderNotAvailable, .fencedLeaderEpoch, .unknownLeaderEpoch,
         .unknownTopicOrPartition].contains(ErrorCode(code))
    }
}
