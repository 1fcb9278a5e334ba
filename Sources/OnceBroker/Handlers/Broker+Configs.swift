import KafkaProtocol
import OnceCore
import OnceStorage

/// DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, this broker (and the
/// cluster-wide broker default) and consumer groups.
extension Broker {
    /// One config as DescribeConfigs shows it.
    struct ConfigRow {
        var name: String
        var value: String?
        var source: Int8
        var readOnly: Bool
        var isDefault: Bool { source == ConfigSource.defaultConfig }
    }

    /// A refused admin request: the code and message Kafka gives.
    struct AdminRefusal: Error {
        var code: ErrorCode
        var message: String
    }

    func describeConfigs(_ req: DescribeConfigsRequest, _ request: Request) -> DescribeConfigsResponse {
        var response = DescribeConfigsResponse()
        let auth = authorization(request)
        response.results = req.resources.map { resource in
            var result = DescribeConfigsResponse.DescribeConfigsResult()
            result.resourceType = resource.resourceType
            result.resourceName = resource.resourceName
            let rows: [ConfigRow]
            let found = Self.configRefusal(auth, .describeConfigs, type: resource.resourceType, name: resource.resourceName)
                .map { Result<[ConfigRow], AdminRefusal>.failure($0) } ?? configRows(type: resource.resourceType, name: resource.resourceName)
            switch found {
            case .success(let found): rows = found
            case .failure(let refusal):
                result.errorCode = refusal.code.rawValue
                result.errorMessage = refusal.message
                metrics.error(.describeConfigs, refusal.code)
                return result
            }
            // Null asks for every config; so does an empty list, as Kafka treats it.
            let wanted = resource.configurationKeys.flatMap { $0.isEmpty ? nil : Set($0) }
            result.configs = rows.filter { wanted?.contains($0.name) ?? true }.map { row in
                var c = DescribeConfigsResponse.DescribeConfigsResourceResult()
                c.name = row.name
                c.value = row.value
                c.readOnly = row.readOnly
                c.isDefault = row.isDefault
                c.configSource = row.source
                if req.includeSynonyms {
                    var s = DescribeConfigsResponse.DescribeConfigsSynonym()
                    s.name = row.name
                    s.value = row.value
                    s.source = row.source
                    c.synonyms = [s]
                }
                return c
            }
            return result
        }
        return response
    }

    /// AlterConfigs: each resource's overrides become exactly the ones given; the rest return to
    /// their defaults.
    func alterConfigs(_ req: AlterConfigsRequest, _ request: Request) -> AlterConfigsResponse {
        var response = AlterConfigsResponse()
        let auth = authorization(request)
        response.responses = req.resources.map { resource in
            var result = AlterConfigsResponse.AlterConfigsResourceResponse()
            result.resourceType = resource.resourceType
            result.resourceName = resource.resourceName
            let refusal = Self.configRefusal(auth, .alterConfigs, type: resource.resourceType, name: resource.resourceName) ?? alterConfigs(type: resource.resourceType, name: resource.resourceName, validateOnly: req.validateOnly) { _ in
                var next: [String: String] = [:]
                for config in resource.configs {
                    guard next[config.name] == nil else {
                        throw AdminRefusal(code: .invalidRequest, message: "Error due to duplicate config keys")
                    }
                    guard let value = config.value else {
                        throw AdminRefusal(code: .invalidRequest, message: "Null value not supported for : \(config.name)")
                    }
                    next[config.name] = value
                }
                return next
            }
            result.errorCode = refusal?.code.rawValue ?? 0
            result.errorMessage = refusal?.message
            if let refusal { metrics.error(.alterConfigs, refusal.code) }
            return result
        }
        return response
    }

    /// IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT applied to the current
    /// overrides.
    func incrementalAlterConfigs(_ req: IncrementalAlterConfigsRequest, _ request: Request) -> IncrementalAlterConfigsResponse {
        var response = IncrementalAlterConfigsResponse()
        let auth = authorization(request)
        response.responses = req.resources.map { resource in
            var result = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse()
            result.resourceType = resource.resourceType
            result.resourceName = resource.resourceName
            let type = resource.resourceType
            let refusal = Self.configRefusal(auth, .alterConfigs, type: type, name: resource.resourceName) ?? alterConfigs(type: type, name: resource.resourceName, validateOnly: req.validateOnly) { current in
                guard Set(resource.configs.map(\.name)).count == resource.configs.count else {
                    throw AdminRefusal(code: .invalidRequest, message: "Error due to duplicate config keys")
                }
                var next = current
                for config in resource.configs {
                    try Self.apply(config, to: &next, defaults: configRows(type: type, name: resource.resourceName))
                }
                return next
            }
            result.errorCode = refusal?.code.rawValue ?? 0
            result.errorMessage = refusal?.message
            if let refusal { metrics.error(.incrementalAlterConfigs, refusal.code) }
            return result
        }
        return response
    }

    /// The resource's DESCRIBE_CONFIGS or ALTER_CONFIGS, refused with the code of its kind: a topic's
    /// own ACLs, the cluster's for the broker, a group's own.
    private static func configRefusal(
        _ auth: RequestAuthorization, _ operation: AclOperation, type: Int8, name: String
    ) -> AdminRefusal? {
        switch type {
        case ConfigResourceType.topic:
            auth.allowsTopic(operation, name) ? nil : AdminRefusal(code: .topicAuthorizationFailed, message: "Authorization failed.")
        case ConfigResourceType.group:
            auth.allowsGroup(operation, name) ? nil : AdminRefusal(code: .groupAuthorizationFailed, message: "Authorization failed.")
        default:
            auth.allowsCluster(operation) ? nil : AdminRefusal(code: .clusterAuthorizationFailed, message: "Authorization failed.")
        }
    }

    /// Kafka's AlterConfigOp types.
    private enum AlterOperation: Int8 {
        case set = 0, delete = 1, append = 2, subtract = 3
    }

    /// Configs whose value is a comma-separated list, the only ones APPEND and SUBTRACT apply to.
    private static let listConfigs: Set<String> = [
        "cleanup.policy", "leader.replication.throttled.replicas", "follower.replication.throttled.replicas",
        "log.cleanup.policy",
    ]

    private static func apply(
        _ config: IncrementalAlterConfigsRequest.AlterableConfig, to overrides: inout [String: String],
        defaults: Result<[ConfigRow], AdminRefusal>
    ) throws {
        guard let operation = AlterOperation(rawValue: config.configOperation) else {
            throw AdminRefusal(code: .invalidRequest, message: "Unknown operation type \(config.configOperation)")
        }
        if operation != .delete && config.value == nil {
            throw AdminRefusal(code: .invalidRequest, message: "Null value not supported for : \(config.name)")
        }
        switch operation {
        case .set:
            overrides[config.name] = config.value
        case .delete:
            overrides[config.name] = nil
        case .append, .subtract:
            guard listConfigs.contains(config.name) else {
                let verb = operation == .append ? "APPEND" : "SUBTRACT"
                throw AdminRefusal(
                    code: .invalidConfig, message: "Can't \(verb) to key \(config.name) because its type is not LIST.")
            }
            let row = (try? defaults.get())?.first { $0.name == config.name }
            let effective = overrides[config.name] ?? row?.value ?? ""
            var items = effective.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
            let given = (config.value ?? "").split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
            if operation == .append {
                items += given.filter { !items.contains($0) }
            } else {
                items.removeAll { given.contains($0) }
            }
            overrides[config.name] = items.joined(separator: ",")
        }
    }

    /// Validates and stores one resource's new overrides, computed by `change` from its current
    /// ones. Returns nil on success.
    private func alterConfigs(
        type: Int8, name: String, validateOnly: Bool, change: ([String: String]) throws -> [String: String]
    ) -> AdminRefusal? {
        do {
            switch type {
            case ConfigResourceType.topic:
                guard let meta = storage.topic(named: name) else {
                    throw AdminRefusal(code: .unknownTopicOrPartition, message: "Topic \(name) does not exist.")
                }
                let next = try change(meta.configs)
                if let problem = Self.configProblem(next) { throw AdminRefusal(code: .invalidConfig, message: problem) }
                if let problem = internalTopicProblem(name, from: meta.configs, to: next) {
                    throw AdminRefusal(code: .invalidConfig, message: problem)
                }
                if !validateOnly {
                    try storage.setTopicConfigs(topic: name, configs: next)
                    logger.info("altered topic configs", metadata: ["topic": "\(name)", "overrides": "\(next)"])
                }
            case ConfigResourceType.broker:
                let perBroker = !name.isEmpty
                if perBroker && name != String(config.nodeId) {
                    throw AdminRefusal(code: .invalidRequest, message: "Unexpected broker id, expected \(config.nodeId) or empty string, but received \(name)")
                }
                let current = dynamicConfigs.current
                let next = try change(perBroker ? current.broker : current.clusterDefault)
                let fixed = Set(brokerStartupConfigs().map(\.name))
                if let problem = BrokerDynamicConfigs.problem(next, fixed: fixed) {
                    let resource = "ConfigResource(type=BROKER, name='\(name)')"
                    throw AdminRefusal(code: .invalidRequest, message: "Invalid config value for resource \(resource): \(problem)")
                }
                if !validateOnly {
                    try dynamicConfigs.update { if perBroker { $0.broker = next } else { $0.clusterDefault = next } }
                }
            case ConfigResourceType.group:
                guard !name.isEmpty else { throw AdminRefusal(code: .invalidRequest, message: "Group name must not be empty") }
                let next = try change(dynamicConfigs.current.groups[name] ?? [:])
                if let problem = GroupConfigs.problem(next) { throw AdminRefusal(code: .invalidConfig, message: problem) }
                if !validateOnly {
                    try dynamicConfigs.update { $0.groups[name] = next.isEmpty ? nil : next }
                }
            default:
                throw AdminRefusal(code: .invalidRequest, message: "Unsupported resource type \(type)")
            }
            return nil
        } catch let refusal as AdminRefusal {
            return refusal
        } catch {
            let (code, message) = errorCode(for: error)
            return AdminRefusal(code: code, message: message)
        }
    }

    /// The coordinators keep their whole state in the internal topics and rely on them never
    /// being trimmed by time or size, and Kafka keeps internal topics off tiered storage; a
    /// change that would undo either is refused.
    private func internalTopicProblem(_ name: String, from old: [String: String], to new: [String: String]) -> String? {
        guard InternalTopics.names.contains(name) else { return nil }
        for key in ["cleanup.policy", "retention.ms", "retention.bytes"] where old[key] != new[key] {
            return "\(key) of the internal topic \(name) cannot be changed: the coordinator's state lives there"
        }
        if new["remote.storage.enable"]?.lowercased() == "true" {
            return "Internal topic \(name) cannot have remote storage enabled"
        }
        return nil
    }

    /// Every config of one resource, or why there is none to show.
    func configRows(type: Int8, name: String) -> Result<[ConfigRow], AdminRefusal> {
        switch type {
        case ConfigResourceType.topic:
            guard let meta = storage.topic(named: name) else {
                return .failure(AdminRefusal(code: .unknownTopicOrPartition, message: "topic '\(name)' does not exist"))
            }
            return .success(Self.topicConfig(meta.configs).entries.map { e in
                ConfigRow(name: e.name, value: e.value, source: e.isDefault ? ConfigSource.defaultConfig : ConfigSource.topicConfig, readOnly: false)
            })
        case ConfigResourceType.broker:
            guard name.isEmpty || name == String(config.nodeId) else {
                return .failure(AdminRefusal(code: .invalidRequest, message: "this is broker \(config.nodeId), not '\(name)'"))
            }
            var rows = Dictionary(uniqueKeysWithValues: BrokerDynamicConfigs.known.map { name, config in
                (name, ConfigRow(name: name, value: config.defaultValue, source: ConfigSource.defaultConfig, readOnly: false))
            })
            for e in brokerStartupConfigs() {
                let source = e.isDefault ? ConfigSource.defaultConfig : ConfigSource.staticBroker
                rows[e.name] = ConfigRow(name: e.name, value: e.value, source: source, readOnly: true)
            }
            let dynamic = dynamicConfigs.current
            for (key, value) in dynamic.clusterDefault {
                rows[key] = ConfigRow(name: key, value: value, source: ConfigSource.dynamicDefaultBroker, readOnly: false)
            }
            if !name.isEmpty {
                for (key, value) in dynamic.broker {
                    rows[key] = ConfigRow(name: key, value: value, source: ConfigSource.dynamicBroker, readOnly: false)
                }
            }
            return .success(rows.values.sorted { $0.name < $1.name })
        case ConfigResourceType.group:
            guard !name.isEmpty else { return .failure(AdminRefusal(code: .invalidRequest, message: "Group name must not be empty")) }
            let overrides = dynamicConfigs.current.groups[name] ?? [:]
            return .success(GroupConfigs.all.map { definition in
                if let value = overrides[definition.name] {
                    return ConfigRow(name: definition.name, value: value, source: ConfigSource.groupConfig, readOnly: false)
                }
                return ConfigRow(name: definition.name, value: definition.defaultValue, source: ConfigSource.defaultConfig, readOnly: false)
            })
        default:
            return .failure(AdminRefusal(code: .invalidRequest, message: "resource type \(type) is not supported"))
        }
    }

    /// The broker settings a client may ask about, under Kafka's names. They come from the
    /// command line and hold until the next start.
    func brokerStartupConfigs() -> [TopicConfig.Entry] {
        let flush: String
        switch config.flushPolicy {
        case .none: flush = "none"
        case .interval(let ms): flush = "interval:\(ms)"
        case .always: flush = "always"
        }
        return [
            .init(
                name: "advertised.listeners", value: advertisedListeners.kafkaForm(config.listeners),
                isDefault: config.listeners.allSatisfy { $0.advertised == nil }),
            .init(name: "auto.create.topics.enable", value: String(config.autoCreateTopics), isDefault: config.autoCreateTopics),
            .init(name: "broker.id", value: String(config.nodeId), isDefault: false),
            .init(name: "listeners", value: config.listeners.map(\.description).joined(separator: ","), isDefault: false),
            .init(
                name: "listener.security.protocol.map",
                value: config.listeners.map { "\($0.name):\($0.securityProtocol.rawValue)" }.joined(separator: ","),
                isDefault: config.listeners.allSatisfy { $0.name == $0.securityProtocol.rawValue }),
            .init(
                name: "log.cleaner.dedupe.buffer.size", value: String(config.cleanerDedupeBufferBytes),
                isDefault: config.cleanerDedupeBufferBytes == FileLogStorage.defaultDedupeBufferBytes),
            .init(name: "log.cleaner.backoff.ms", value: String(config.cleanerBackoffMs), isDefault: config.cleanerBackoffMs == 15_000),
            .init(
                name: "log.cleaner.io.max.bytes.per.second",
                value: String(config.cleanerIoMaxBytesPerSecond ?? .greatestFiniteMagnitude),
                isDefault: config.cleanerIoMaxBytesPerSecond == nil),
            .init(name: "log.dirs", value: config.dataDirectory, isDefault: false),
            .init(name: "log.retention.check.interval.ms", value: String(config.retentionCheckIntervalMs), isDefault: config.retentionCheckIntervalMs == 300_000),
            .init(name: "num.partitions", value: String(config.defaultPartitions), isDefault: config.defaultPartitions == 1),
            .init(name: "once.flush.policy", value: flush, isDefault: config.flushPolicy == .none),
            .init(name: "socket.request.max.bytes", value: String(config.maxRequestSize), isDefault: config.maxRequestSize == 100 * 1024 * 1024),
        ]
    }
}

/// Config resource types (Kafka's ConfigResource.Type).
enum ConfigResourceType {
    static let topic: Int8 = 2
    static let broker: Int8 = 4
    static let group: Int8 = 32
}

/// Config sources (Kafka's DescribeConfigsResponse.ConfigSource).
enum ConfigSource {
    static let topicConfig: Int8 = 1
    static let dynamicBroker: Int8 = 2
    static let dynamicDefaultBroker: Int8 = 3
    static let staticBroker: Int8 = 4
    static let defaultConfig: Int8 = 5
    static let groupConfig: Int8 = 8
}
