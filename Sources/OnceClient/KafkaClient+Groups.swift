import KafkaProtocol
import NIOCore

/// A group as ListGroups reports it.
public struct GroupListing: Hashable, Sendable {
    public var groupId: String
    /// "consumer" for consumer groups; empty for groups that only store offsets.
    public var protocolType: String
    /// Empty when the broker's ListGroups version predates states.
    public var state: String
}

/// A group as DescribeGroups (a classic group) or ConsumerGroupDescribe (a KIP-848 group) reports it.
public struct GroupDescription: Hashable, Sendable {
    public var groupId: String
    /// "classic" or "consumer", as Kafka's admin tools name the group's protocol; a group converts
    /// between them as KIP-848 consumers replace classic ones and back.
    public var type: String = "classic"
    public var state: String
    public var protocolType: String
    /// The assignor the group chose, for consumer groups.
    public var protocolName: String
    public var members: [Member]

    public struct Member: Hashable, Sendable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        /// Partitions assigned to the member; empty while the group rebalances or if the group
        /// does not use the consumer protocol.
        public var assignment: [TopicPartition]
    }
}

extension KafkaClient {
    /// Every group the cluster's coordinators know (this asks the bootstrap broker, which for a
    /// single-broker cluster is every coordinator).
    public func listGroups() async throws -> [GroupListing] {
        let response = try await liveBootstrap().send(ListGroupsRequest())
        if let error = KafkaError(errorCode: response.errorCode) { throw error }
        return response.groups.map {
            GroupListing(groupId: $0.groupId, protocolType: $0.protocolType, state: $0.groupState)
        }.sorted { $0.groupId < $1.groupId }
    }

    /// Members and assignments of a group. An unknown group comes back in state "Dead".
    /// DescribeGroups reads a KIP-848 group as Dead, so such a group is asked ConsumerGroupDescribe,
    /// as Kafka's admin client does.
    public func describeGroup(_ groupId: String) async throws -> GroupDescription {
        let connection = try await coordinator(for: groupId, type: .group)
        let classic = try await describeClassicGroup(groupId, on: connection)
        guard classic.state == "Dead", (try? connection.version(for: ConsumerGroupDescribeRequest.self)) != nil else {
            return classic
        }
        var request = ConsumerGroupDescribeRequest()
        request.groupIds = [groupId]
        let response = try await connection.send(request)
        guard let group = response.groups.first(where: { $0.groupId == groupId }),
            ErrorCode(group.errorCode) != .groupIdNotFound
        else { return classic }
        if let error = KafkaError(errorCode: group.errorCode, message: group.errorMessage) { throw error }
        return GroupDescription(
            groupId: groupId, type: "consumer", state: group.groupState, protocolType: "consumer",
            protocolName: group.assignorName,
            members: group.members.map { m in
                GroupDescription.Member(
                    memberId: m.memberId, groupInstanceId: m.instanceId, clientId: m.clientId, clientHost: m.clientHost,
                    assignment: m.assignment.topicPartitions.flatMap { tp in
                        tp.partitions.sorted().map { TopicPartition(tp.topicName, $0) }
                    })
            })
    }

    private func describeClassicGroup(_ groupId: String, on connection: KafkaConnection) async throws -> GroupDescription {
        var request = DescribeGroupsRequest()
        request.groups = [groupId]
        let response = try await connection.send(request)
        guard let group = response.groups.first(where: { $0.groupId == groupId }) else {
            throw KafkaClientError(.unexpectedResponse, "DescribeGroups response does not mention '\(groupId)'")
        }
        if let error = KafkaError(errorCode: group.errorCode, message: group.errorMessage) { throw error }
        return GroupDescription(
            groupId: groupId, state: group.groupState, protocolType: group.protocolType,
            protocolName: group.protocolData,
            members: group.members.map { m in
                GroupDescription.Member(
                    memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                    clientHost: m.clientHost,
                    assignment: group.protocolType == "consumer" ? Self.decodeAssignment(m.memberAssignment) : [])
            })
    }

    /// Every offset the group has committed, by partition.
    public func committedOffsets(group groupId: String) async throws -> [TopicPartition: Int64] {
        let connection = try await coordinator(for: groupId, type: .group)
        let version = try connection.version(for: OffsetFetchRequest.self)
        guard version >= 2 else {
            throw KafkaClientError(.unsupportedApi, "listing all committed offsets needs OffsetFetch v2 or later")
        }
        var request = OffsetFetchRequest()
        var offsets: [TopicPartition: Int64] = [:]
        if version >= 8 {
            var group = OffsetFetchRequest.OffsetFetchRequestGroup()
            group.groupId = groupId
            group.topics = nil
            request.groups = [group]
            let response = try await connection.send(request, version: version)
            guard let result = response.groups.first(where: { $0.groupId == groupId }) else {
                throw KafkaClientError(.unexpectedResponse, "OffsetFetch response does not mention '\(groupId)'")
            }
            if let error = KafkaError(errorCode: result.errorCode) { throw error }
            for t in result.topics {
                for p in t.partitions where p.committedOffset >= 0 {
                    if let error = KafkaError(errorCode: p.errorCode) { throw error }
                    offsets[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset
                }
            }
        } else {
            request.groupId = groupId
            request.topics = nil
            let response = try await connection.send(request, version: version)
            if let error = KafkaError(errorCode: response.errorCode) { throw error }
            for t in response.topics {
                for p in t.partitions where p.committedOffset >= 0 {
                    offsets[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset
                }
            }
        }
        return offsets
    }

    /// The partitions in a consumer-protocol assignment (a version prefix, then the assignment).
    static func decodeAssignment(_ bytes: [UInt8]) -> [TopicPartition] {
        guard !bytes.isEmpty else { return [] }
        var buffer = ByteBuffer(bytes: bytes)
        guard let version: Int16 = try? buffer.readKafkaInt(),
            let assignment = try? ConsumerProtocolAssignment(
                from: &buffer, version: min(version, ConsumerProtocolAssignment.validVersions.upperBound))
        else { return [] }
        return assignment.assignedPartitions.flatMap { t in t.partitions.map { TopicPartition(t.topic, $0) } }
            .sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }
}
