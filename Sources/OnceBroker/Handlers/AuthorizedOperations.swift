import OnceCore

/// The `authorized_operations` bitfields of Metadata, DescribeCluster and DescribeGroups (KIP-430):
/// the operations each resource type supports, of which the answer names those the principal is
/// granted (all of them without an authorizer, as Kafka without one reports).
enum AuthorizedOperations {
    static let topic: [AclOperation] = [.read, .write, .create, .describe, .delete, .alter, .describeConfigs, .alterConfigs]
    static let group: [AclOperation] = [.read, .describe, .delete, .describeConfigs, .alterConfigs]
    static let cluster: [AclOperation] = [.create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe]
}

extension RequestAuthorization {
    func topicOperations(_ name: String) -> Int32 { operationBits(.topic, name, among: AuthorizedOperations.topic) }
    func groupOperations(_ name: String) -> Int32 { operationBits(.group, name, among: AuthorizedOperations.group) }
    /// Kafka answers 0 to a principal that may not DESCRIBE the cluster.
    func clusterOperations() -> Int32 {
        allowsCluster(.describe) ? operationBits(.cluster, AclResourcePattern.clusterName, among: AuthorizedOperations.cluster) : 0
    }
}
