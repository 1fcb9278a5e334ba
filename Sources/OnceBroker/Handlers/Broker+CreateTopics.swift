import KafkaProtocol
import NIOCore
import OnceStorage

/// CreateTopics. Checks run on the event loop; making directories does not, because a topic of
/// thousands of partitions takes seconds of file work that would stall every connection served by
/// that loop. The request's task awaits the runtime's administration thread, where creations,
/// deletions and added partitions run one at a time, which also makes the broker-wide partition
/// limit exact.
extension Broker {
    /// Kafka's controller refuses an operation that needs more than its bound of records with
    /// this message (a PolicyViolationException).
    static let excessiveBatchMessage = "Unable to perform excessively large batch operation."

    func createTopics(_ req: CreateTopicsRequest, _ request: Request) -> EventLoopFuture<CreateTopicsResponse> {
        var response = CreateTopicsResponse()
        var toCreate: [(index: Int, partitions: Int32, configs: [String: String], describable: Bool)] = []
        let auth = authorization(request)
        response.topics = req.topics.enumerated().map { index, t in
            var result = CreateTopicsResponse.CreatableTopicResult()
            result.name = t.name
            // A manual assignment decides the partition count: one entry per partition.
            let partitions = !t.assignments.isEmpty
                ? Int32(t.assignments.count) : t.numPartitions == -1 ? config.defaultPartitions : t.numPartitions
            var configs: [String: String] = [:]
            for c in t.configs { if let v = c.value { configs[c.name] = v } }
            // Cluster CREATE covers every topic; Topic CREATE one name. Checked before existence,
            // so a refusal does not say whether the topic is there.
            if !auth.allowsCreatingTopic(t.name) {
                result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                result.errorMessage = "Authorization failed."
            } else if let (code, message) = assignmentRefusal(t) {
                result.errorCode = code.rawValue
                result.errorMessage = message
            } else if partitions <= 0 {
                result.errorCode = ErrorCode.invalidPartitions.rawValue
                result.errorMessage = "number of partitions must be positive"
            } else if t.replicationFactor != -1 && t.replicationFactor != 1 && t.assignments.isEmpty {
                result.errorCode = ErrorCode.invalidReplicationFactor.rawValue
                result.errorMessage = "replication factor \(t.replicationFactor) is larger than the 1 available broker"
            } else if storage.topic(named: t.name) != nil {
                result.errorCode = ErrorCode.topicAlreadyExists.rawValue
                result.errorMessage = "topic '\(t.name)' already exists"
            } else if let problem = TopicName.validationError(t.name) {
                result.errorCode = ErrorCode.invalidTopicException.rawValue
                result.errorMessage = problem
            } else if let problem = Self.configProblem(configs) {
                result.errorCode = ErrorCode.invalidConfig.rawValue
                result.errorMessage = problem
            } else {
                toCreate.append((index, partitions, configs, auth.allowsTopic(.describeConfigs, t.name)))
            }
            return result
        }
        // Like Kafka's controller, one request over the bound fails as a whole, before any work.
        let requested = toCreate.reduce(0) { $0 + Int($1.partitions) }
        if requested > config.maxPartitionsPerRequest {
            for item in toCreate {
                response.topics[item.index].errorCode = ErrorCode.policyViolation.rawValue
                response.topics[item.index].errorMessage =
                    "\(Self.excessiveBatchMessage) The request asks for \(requested) partitions; "
                    + "the limit is \(config.maxPartitionsPerRequest) (--max-partitions-per-request)."
            }
            toCreate = []
        }
        guard !toCreate.isEmpty else { return request.eventLoop.makeSucceededFuture(finish(response)) }
        let pending = response
        let creations = toCreate
        let validateOnly = req.validateOnly
        return administer(on: request.eventLoop) {
            var response = pending
            for item in creations {
                response.topics[item.index] = self.createTopic(
                    response.topics[item.index], partitions: item.partitions, configs: item.configs,
                    validateOnly: validateOnly, describable: item.describable)
            }
            return self.finish(response)
        }
    }

    /// Runs topic file work on the administration thread, one operation at a time, from the
    /// request's task.
    func administer<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> T) -> EventLoopFuture<T> {
        let runtime = runtime
        return runtime.task(on: eventLoop) { try await runtime.administration.perform(work) }
    }

    /// Creates one checked topic, within the broker-wide partition limit. Runs on the
    /// administration thread. A creator without DESCRIBE_CONFIGS on the topic is not shown its
    /// configs, partitions or replication, as Kafka's controller answers it.
    private func createTopic(
        _ result: CreateTopicsResponse.CreatableTopicResult, partitions: Int32, configs: [String: String],
        validateOnly: Bool, describable: Bool
    ) -> CreateTopicsResponse.CreatableTopicResult {
        var result = result
        let existing = storage.topics().reduce(0) { $0 + Int($1.partitionCount) }
        if existing + Int(partitions) > config.maxPartitions {
            result.errorCode = ErrorCode.policyViolation.rawValue
            result.errorMessage =
                "\(partitions) more partitions would make \(existing + Int(partitions)) on this broker; "
                + "the limit is \(config.maxPartitions) (--max-partitions)"
        } else if !validateOnly {
            do {
                let meta = try storage.createTopic(name: result.name, partitions: partitions, configs: configs)
                result.topicId = meta.id
                logger.info("created topic", metadata: ["topic": "\(result.name)", "partitions": "\(partitions)"])
            } catch {
                let (code, message) = errorCode(for: error)
                result.errorCode = code.rawValue
                result.errorMessage = message
            }
        }
        if result.errorCode == 0 && !describable {
            result.topicConfigErrorCode = ErrorCode.topicAuthorizationFailed.rawValue
        } else if result.errorCode == 0 {
            result.numPartitions = partitions
            result.replicationFactor = 1
            result.configs = Self.topicConfig(configs).entries.map { e in
                var c = CreateTopicsResponse.CreatableTopicConfigs()
                c.name = e.name
                c.value = e.value
                c.configSource = e.isDefault ? ConfigSource.defaultConfig : ConfigSource.topicConfig
                return c
            }
        }
        return result
    }

    /// Kafka's checks of a manual replica assignment, in its order and words (KRaft's
    /// ReplicationControlManager): both counts left at -1, no partition twice, every list
    /// placeable and as long as the first, and the partitions exactly 0..<n.
    private func assignmentRefusal(_ t: CreateTopicsRequest.CreatableTopic) -> (ErrorCode, String)? {
        guard !t.assignments.isEmpty else { return nil }
        if t.replicationFactor != -1 {
            return (.invalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.")
        }
        if t.numPartitions != -1 {
            return (.invalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.")
        }
        var indexes: Set<Int32> = []
        var replicationFactor: Int?
        for assignment in t.assignments {
            guard indexes.insert(assignment.partitionIndex).inserted else {
                return (.invalidReplicaAssignment, "Found multiple manual partition assignments for partition \(assignment.partitionIndex)")
            }
            if let problem = replicaAssignmentProblem(assignment.brokerIds, replicationFactor: replicationFactor) {
                return (.invalidReplicaAssignment, problem)
            }
            replicationFactor = assignment.brokerIds.count
        }
        if indexes != Set(0..<Int32(t.assignments.count)) {
            return (.invalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
        }
        return nil
    }

    private func finish(_ response: CreateTopicsResponse) -> CreateTopicsResponse {
        for topic in response.topics where topic.errorCode != 0 {
            metrics.error(.createTopics, ErrorCode(topic.errorCode))
        }
        return response
    }
}
