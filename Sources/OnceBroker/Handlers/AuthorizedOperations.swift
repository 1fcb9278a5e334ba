/// The `authorized_operations` bitfields of Metadata, DescribeCluster and DescribeGroups (KIP-430).
/// This broker has no authorizer, and Kafka without one reports every operation the resource
/// type supports, as bits numbered by Kafka's AclOperation codes.
enum AuthorizedOperations {
    /// Kafka's AclOperation codes.
    enum Operation: Int32 {
        case read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8, clusterAction = 9
        case describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12
    }

    static let topic = bits([.read, .write, .create, .describe, .delete, .alter, .describeConfigs, .alterConfigs])
    static let group = bits([.read, .describe, .delete, .describeConfigs, .alterConfigs])
    static let cluster = bits([.create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe])

    private static func bits(_ operations: [Operation]) -> Int32 {
        operations.reduce(0) { $0 | 1 << $1.rawValue }
    }
}
