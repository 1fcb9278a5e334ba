import KafkaProtocol

/// One ACL as the ACL APIs carry it, in Kafka's wire codes (ResourceType, PatternType, AclOperation,
/// AclPermissionType), so the client needs no authorizer vocabulary of its own; as a filter, ANY (1)
/// and a nil name, principal or host match everything.
public struct KafkaAcl: Sendable, Hashable {
    public var resourceType: Int8
    public var resourceName: String?
    public var patternType: Int8
    public var principal: String?
    public var host: String?
    public var operation: Int8
    public var permission: Int8

    public init(
        resourceType: Int8, resourceName: String?, patternType: Int8, principal: String?, host: String?, operation: Int8,
        permission: Int8
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }
}

extension KafkaClient {
    /// Creates ACLs; throws the first refusal (CLUSTER_AUTHORIZATION_FAILED, SECURITY_DISABLED,
    /// INVALID_REQUEST) after the broker has stored every binding it accepted.
    public func createAcls(_ acls: [KafkaAcl]) async throws {
        var request = CreateAclsRequest()
        request.creations = acls.map { acl in
            var creation = CreateAclsRequest.AclCreation()
            creation.resourceType = acl.resourceType
            creation.resourceName = acl.resourceName ?? ""
            creation.resourcePatternType = acl.patternType
            creation.principal = acl.principal ?? ""
            creation.host = acl.host ?? "*"
            creation.operation = acl.operation
            creation.permissionType = acl.permission
            return creation
        }
        let response = try await controllerConnection().send(request)
        for result in response.results {
            if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
        }
    }

    /// The stored ACLs a filter matches.
    public func describeAcls(_ filter: KafkaAcl) async throws -> [KafkaAcl] {
        var request = DescribeAclsRequest()
        request.resourceTypeFilter = filter.resourceType
        request.resourceNameFilter = filter.resourceName
        request.patternTypeFilter = filter.patternType
        request.principalFilter = filter.principal
        request.hostFilter = filter.host
        request.operation = filter.operation
        request.permissionType = filter.permission
        let response = try await liveBootstrap().send(request)
        if let error = KafkaError(errorCode: response.errorCode, message: response.errorMessage) { throw error }
        return response.resources.flatMap { resource in
            resource.acls.map {
                KafkaAcl(
                    resourceType: resource.resourceType, resourceName: resource.resourceName, patternType: resource.patternType,
                    principal: $0.principal, host: $0.host, operation: $0.operation, permission: $0.permissionType)
            }
        }
    }

    /// Deletes every stored ACL any filter matches and returns what was deleted.
    @discardableResult
    public func deleteAcls(_ filters: [KafkaAcl]) async throws -> [KafkaAcl] {
        var request = DeleteAclsRequest()
        request.filters = filters.map { filter in
            var f = DeleteAclsRequest.DeleteAclsFilter()
            f.resourceTypeFilter = filter.resourceType
            f.resourceNameFilter = filter.resourceName
            f.patternTypeFilter = filter.patternType
            f.principalFilter = filter.principal
            f.hostFilter = filter.host
            f.operation = filter.operation
            f.permissionType = filter.permission
            return f
        }
        let response = try await controllerConnection().send(request)
        var deleted: [KafkaAcl] = []
        for result in response.filterResults {
            if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
            deleted += result.matchingAcls.map {
                KafkaAcl(
                    resourceType: $0.resourceType, resourceName: $0.resourceName, patternType: $0.patternType,
                    principal: $0.principal, host: $0.host, operation: $0.operation, permission: $0.permissionType)
            }
        }
        return deleted
    }
}
