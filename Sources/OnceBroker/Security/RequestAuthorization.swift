import OnceCore

/// One request's authorization: the authorizer as the request arrived, and who is asking from where.
/// Handlers take it once and ask it about every resource the request names, so a request's
/// decisions agree with each other even when ACLs change meanwhile. Without an authorizer
/// (`--authorizer off`) everything is allowed, as Kafka without `authorizer.class.name`.
struct RequestAuthorization: Sendable {
    let authorizer: AclAuthorizer?
    let principal: KafkaPrincipal
    let host: String

    var isEnabled: Bool { authorizer != nil }

    func allows(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        authorizer?.authorize(principal, host: host, operation, type, name) ?? true
    }

    func allowsTopic(_ operation: AclOperation, _ name: String) -> Bool { allows(operation, .topic, name) }
    func allowsGroup(_ operation: AclOperation, _ name: String) -> Bool { allows(operation, .group, name) }
    func allowsTransactionalId(_ operation: AclOperation, _ name: String) -> Bool { allows(operation, .transactionalId, name) }
    func allowsCluster(_ operation: AclOperation) -> Bool { allows(operation, .cluster, AclResourcePattern.clusterName) }

    /// Kafka's `authorizeByResourceType`: the operation on at least one resource of the type.
    func allowsAny(_ operation: AclOperation, _ type: AclResourceType) -> Bool {
        authorizer?.authorizeAny(principal, host: host, operation, type) ?? true
    }

    /// Creating a topic: Cluster CREATE covers every topic, Topic CREATE one name.
    func allowsCreatingTopic(_ name: String) -> Bool {
        allowsCluster(.create) || allowsTopic(.create, name)
    }

    /// KIP-430's bitfield of the operations granted among `candidates`; every candidate without
    /// an authorizer.
    func operationBits(_ type: AclResourceType, _ name: String, among candidates: [AclOperation]) -> Int32 {
        let granted = authorizer?.authorizedOperations(principal, host: host, type, name, among: candidates) ?? candidates
        return granted.reduce(0) { $0 | 1 << Int32($1.rawValue) }
    }
}

extension Broker {
    func authorization(_ request: Request) -> RequestAuthorization {
        RequestAuthorization(authorizer: acls?.current, principal: request.session.principal, host: request.session.peerHost)
    }
}
