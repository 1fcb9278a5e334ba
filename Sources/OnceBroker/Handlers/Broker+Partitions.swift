import KafkaProtocol
import NIOCore
import OnceStorage

/// CreatePartitions: growing a topic. Clients see the new partitions in their next Metadata;
/// producers spread keys over them, groups rebalance onto them, and a transaction can add them
/// like any other partition, because every one of those reads the partition count from storage.
extension Broker {
    /// Runs on the administration thread, as topic creation does: the new partitions' directories
    /// are file work, and the count they add must not race a creation's partition limit.
    func createPartitions(_ req: CreatePartitionsRequest, _ request: Request) -> EventLoopFuture<CreatePartitionsResponse> {
        administer(on: request.eventLoop) { self.createPartitionsNow(req, request) }
    }

    private func createPartitionsNow(_ req: CreatePartitionsRequest, _ request: Request) -> CreatePartitionsResponse {
        var seen: Set<String> = []
        let duplicates = Set(req.topics.map(\.name).filter { !seen.insert($0).inserted })
        var response = CreatePartitionsResponse()
        // Kafka answers a duplicated topic once, with INVALID_REQUEST, and touches it not at all.
        response.results = duplicates.sorted().map { name in
            var result = CreatePartitionsResponse.CreatePartitionsTopicResult()
            result.name = name
            result.errorCode = ErrorCode.invalidRequest.rawValue
            result.errorMessage = "Duplicate topic name."
            return result
        }
        let auth = authorization(request)
        for topic in req.topics where !duplicates.contains(topic.name) {
            var result = CreatePartitionsResponse.CreatePartitionsTopicResult()
            result.name = topic.name
            if !auth.allowsTopic(.alter, topic.name) {
                result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                result.errorMessage = "Authorization failed."
            } else if let (code, message) = createPartitionsRefusal(topic) {
                result.errorCode = code.rawValue
                result.errorMessage = message
            } else if !req.validateOnly {
                do {
                    try storage.addPartitions(topic: topic.name, count: topic.count)
                    logger.info("added partitions", metadata: ["topic": "\(topic.name)", "partitions": "\(topic.count)"])
                } catch {
                    let (code, message) = errorCode(for: error)
                    result.errorCode = code.rawValue
                    result.errorMessage = message
                }
            }
            if result.errorCode != 0 { metrics.error(.createPartitions, ErrorCode(result.errorCode)) }
            response.results.append(result)
        }
        return response
    }

    /// Kafka's checks, in its order and with its messages (KRaft's ReplicationControlManager).
    private func createPartitionsRefusal(_ topic: CreatePartitionsRequest.CreatePartitionsTopic) -> (ErrorCode, String?)? {
        guard let meta = storage.topic(named: topic.name) else { return (.unknownTopicOrPartition, nil) }
        // The coordinators find a key's partition from the internal topic's partition count: growing
        // it would move every group's offsets and every transactional id's state out of reach. Kafka
        // only warns; we refuse, with the code Kafka gives for a request that cannot be served.
        if InternalTopics.names.contains(meta.name) {
            return (.invalidRequest, "\(meta.name) is an internal topic; its partition count cannot change")
        }
        let current = meta.partitionCount
        if topic.count == current {
            return (.invalidPartitions, "Topic already has \(current) partition(s).")
        }
        if topic.count < current {
            return (.invalidPartitions,
                    "The topic \(topic.name) currently has \(current) partition(s); \(topic.count) would not be an increase.")
        }
        guard let assignments = topic.assignments else { return nil }
        let additional = topic.count - current
        if assignments.count != additional {
            return (.invalidReplicaAssignment,
                    "Attempted to add \(additional) additional partition(s), but only \(assignments.count) assignment(s) were specified.")
        }
        for assignment in assignments {
            if let problem = replicaAssignmentProblem(assignment.brokerIds, replicationFactor: 1) {
                return (.invalidReplicaAssignment, problem)
            }
        }
        return nil
    }

    /// Why a manual replica list cannot be placed on this single broker, in Kafka's words; nil if
    /// it can. `replicationFactor` is the one the topic's other partitions have, if any.
    func replicaAssignmentProblem(_ brokerIds: [Int32], replicationFactor: Int?) -> String? {
        if brokerIds.isEmpty { return "The manual partition assignment includes an empty replica list." }
        var previous: Int32?
        for id in brokerIds.sorted() {
            if id != config.nodeId {
                return "The manual partition assignment includes broker \(id), but no such broker is registered."
            }
            if id == previous { return "The manual partition assignment includes the broker \(id) more than once." }
            previous = id
        }
        if let replicationFactor, brokerIds.count != replicationFactor {
            return "The manual partition assignment includes a partition with \(brokerIds.count) replica(s), "
                + "but this is not consistent with previous partitions, which have \(replicationFactor) replica(s)."
        }
        return nil
    }
}
