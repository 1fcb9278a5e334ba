import KafkaProtocol
import OnceCore
import OnceStorage

/// ApiVersions, Metadata and DescribeCluster: what a client asks before anything else.
extension Broker {
    func apiVersions(_ req: ApiVersionsRequest, _ request: Request) -> ApiVersionsResponse {
        apiVersionsResponse(version: request.version)
    }

    func apiVersionsResponse(version: Int16) -> ApiVersionsResponse {
        var response = ApiVersionsResponse()
        response.apiKeys = SupportedApis.advertised.filter { served($0.api) != nil }.map { entry in
            var v = ApiVersionsResponse.ApiVersion()
            v.apiKey = entry.api.rawValue
            v.minVersion = entry.versions.lowerBound
            v.maxVersion = entry.versions.upperBound
            return v
        }
        SupportedFeatures.describe(
            in: &response, version: version, transactionVersion: config.transactionVersion,
            consumerGroupProtocol: config.consumerGroupProtocolEnabled)
        return response
    }

    func metadata(_ req: MetadataRequest, _ request: Request) -> MetadataResponse {
        var response = MetadataResponse()
        response.brokers = liveMembers(for: request).map { member, address in
            var broker = MetadataResponse.MetadataResponseBroker()
            broker.nodeId = member.nodeId
            broker.host = address.host
            broker.port = Int32(address.port)
            broker.rack = member.rack
            return broker
        }
        response.clusterId = clusterId
        response.controllerId = controllerId()
        let auth = authorization(request)
        if req.includeClusterAuthorizedOperations { response.clusterAuthorizedOperations = auth.clusterOperations() }
        let operations: ((String) -> Int32)? = req.includeTopicAuthorizedOperations ? { auth.topicOperations($0) } : nil

        // v0: an empty list means every topic; v1+: null means every topic, empty means none.
        let requested: [MetadataRequest.MetadataRequestTopic]? =
            request.version == 0 && req.topics?.isEmpty == true ? nil : req.topics
        guard let requested else {
            // Topics the principal may not DESCRIBE are left out, so their existence does not leak.
            response.topics = storage.topics().filter { auth.allowsTopic(.describe, $0.name) }
                .map { topicMetadata($0, authorizedOperations: operations) }
            return response
        }
        let allowCreate = config.autoCreateTopics && (request.version < 4 || req.allowAutoTopicCreation)
        response.topics = requested.map { t in
            guard let name = t.name else {
                // KIP-516: v10+ may ask by topic id alone, as KIP-848 consumers do for the topic
                // ids their assignment names.
                if t.topicId != .zero, let meta = storage.topics().first(where: { $0.id == t.topicId }) {
                    return topicMetadata(meta, authorizedOperations: operations)
                }
                var missing = MetadataResponse.MetadataResponseTopic()
                missing.topicId = t.topicId
                missing.errorCode = ErrorCode.unknownTopicId.rawValue
                return missing
            }
            // As Kafka: a named topic the principal may not DESCRIBE, or may not create when it
            // would be auto-created, is answered TOPIC_AUTHORIZATION_FAILED whether it exists or not.
            let mayCreate = allowCreate && auth.allowsCreatingTopic(name)
            guard auth.allowsTopic(.describe, name), storage.topic(named: name) != nil || !allowCreate || mayCreate else {
                var refused = MetadataResponse.MetadataResponseTopic()
                refused.name = name
                refused.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                return refused
            }
            switch topicForUse(name, autoCreate: mayCreate) {
            case .success(let meta):
                return topicMetadata(meta, authorizedOperations: operations)
            case .failure(let code):
                var missing = MetadataResponse.MetadataResponseTopic()
                missing.name = name
                missing.errorCode = code.rawValue
                return missing
            }
        }
        return response
    }

    private func topicMetadata(
        _ meta: TopicMetadata, authorizedOperations: ((String) -> Int32)?
    ) -> MetadataResponse.MetadataResponseTopic {
        var topic = MetadataResponse.MetadataResponseTopic()
        if let authorizedOperations { topic.topicAuthorizedOperations = authorizedOperations(meta.name) }
        topic.name = meta.name
        topic.topicId = meta.id
        topic.isInternal = InternalTopics.names.contains(meta.name)
        topic.partitions = (0..<meta.partitionCount).map { index in
            var p = MetadataResponse.MetadataResponsePartition()
            p.partitionIndex = index
            guard let leader = cluster.leader(of: TopicPartitionKey(meta.name, index)) else {
                // As Kafka while a partition has no leader: the client retries Metadata.
                p.errorCode = ErrorCode.leaderNotAvailable.rawValue
                p.leaderId = -1
                p.leaderEpoch = -1
                return p
            }
            p.leaderId = leader.nodeId
            p.leaderEpoch = leader.epoch
            // The database holds the only copy; the leader is the one replica clients may use.
            p.replicaNodes = [leader.nodeId]
            p.isrNodes = [leader.nodeId]
            return p
        }
        return topic
    }

    /// The topic a request names, created on first use when auto-creation allows it.
    func topicForUse(_ name: String, autoCreate: Bool) -> Result<TopicMetadata, ErrorCode> {
        if let meta = storage.topic(named: name) { return .success(meta) }
        guard autoCreate else { return .failure(.unknownTopicOrPartition) }
        if let refusal = autoCreateRefusal(partitions: Int(config.defaultPartitions)) {
            if let refused = autoCreateBudget.refusalToLog() {
                logger.warning(
                    "not auto-creating topics", metadata: ["topic": "\(name)", "refused": "\(refused)", "reason": "\(refusal)"])
            }
            // As for a topic auto-creation did not make: the client retries Metadata and, when the
            // budget refills or an operator creates the topic, finds it.
            return .failure(.unknownTopicOrPartition)
        }
        do {
            let meta = try storage.createTopic(name: name, partitions: config.defaultPartitions, configs: [:])
            logger.info("auto-created topic", metadata: ["topic": "\(name)", "partitions": "\(config.defaultPartitions)"])
            return .success(meta)
        } catch StorageError.topicExists {
            return storage.topic(named: name).map { .success($0) } ?? .failure(.unknownTopicOrPartition)
        } catch StorageError.invalidConfig, StorageError.unknownTopic {
            return .failure(.invalidTopicException)
        } catch {
            logger.error("auto-creating topic failed", metadata: ["topic": "\(name)", "error": "\(error)"])
            return .failure(.kafkaStorageError)
        }
    }

    /// Why auto-creating `partitions` more would break a limit, or nil if it may go ahead.
    private func autoCreateRefusal(partitions: Int) -> String? {
        // The broker's own internal topics are a fixed cost, not what the cap is for.
        let existing = storage.topics().reduce(0) {
            $0 + (InternalTopics.names.contains($1.name) ? 0 : Int($1.partitionCount))
        }
        if existing + partitions > config.autoCreateMaxPartitions {
            return "the broker holds \(existing) partitions outside internal topics; auto-creation stops at \(config.autoCreateMaxPartitions)"
        }
        guard autoCreateBudget.allow(partitions: partitions) else {
            return "more than \(config.autoCreatePartitionsPerSecond) partitions per second"
        }
        return nil
    }

    func describeCluster(_ req: DescribeClusterRequest, _ request: Request) -> DescribeClusterResponse {
        var response = DescribeClusterResponse()
        if req.includeClusterAuthorizedOperations { response.clusterAuthorizedOperations = authorization(request).clusterOperations() }
        response.clusterId = clusterId
        response.controllerId = controllerId()
        response.brokers = liveMembers(for: request).map { member, address in
            var broker = DescribeClusterResponse.DescribeClusterBroker()
            broker.brokerId = member.nodeId
            broker.host = address.host
            broker.port = Int32(address.port)
            broker.rack = member.rack
            return broker
        }
        return response
    }

    /// Live brokers with the address of the listener the request came through; a broker without
    /// that listener is left out, as Kafka does, since the client could not speak to it.
    func liveMembers(for request: Request) -> [(ClusterMember, HostPort)] {
        cluster.liveMembers().compactMap { member in
            if member.nodeId == cluster.nodeId { return (member, request.advertisedAddress(self)) }
            return member.endpoints[request.session.listenerName].map { (member, $0) }
        }
    }

    /// There is no controller quorum; clients only need a live broker to send admin requests to,
    /// and every broker serves them, so the lowest live node id is named.
    private func controllerId() -> Int32 {
        cluster.liveMembers().first?.nodeId ?? cluster.nodeId
    }
}
