/// What DescribeAcls and DeleteAcls select, matched as Kafka's `AclBindingFilter` matches: `any`
/// (and a nil name, principal or host) matches everything; pattern type MATCH selects the stored
/// patterns that would apply to the named resource (its literal name, the `*` wildcard, and every
/// prefix of it).
public struct AclBindingFilter: Hashable, Sendable {
    public var resourceType: AclResourceType
    public var resourceName: String?
    public var patternType: AclPatternType
    public var principal: String?
    public var host: String?
    public var operation: AclOperation
    public var permission: AclPermission

    public init(
        resourceType: AclResourceType = .any, resourceName: String? = nil, patternType: AclPatternType = .any,
        principal: String? = nil, host: String? = nil, operation: AclOperation = .any, permission: AclPermission = .any
    ) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// Why the filter cannot select anything definite (an UNKNOWN field), as Kafka refuses it with
    /// INVALID_REQUEST; nil when it is usable.
    public var invalidReason: String? {
        if resourceType == .unknown { return "Resource type is UNKNOWN." }
        if patternType == .unknown { return "Resource pattern type is UNKNOWN." }
        if operation == .unknown { return "Operation is UNKNOWN." }
        if permission == .unknown { return "Permission type is UNKNOWN." }
        return nil
    }

    public func matches(_ binding: AclBinding) -> Bool {
        matches(binding.pattern) && matches(binding.entry)
    }

    func matches(_ pattern: AclResourcePattern) -> Bool {
        if resourceType != .any && resourceType != pattern.resourceType { return false }
        if patternType != .any && patternType != .match && patternType != pattern.patternType { return false }
        guard let resourceName else { return true }
        if patternType == .any || patternType == pattern.patternType { return resourceName == pattern.name }
        return pattern.covers(resourceName)
    }

    func matches(_ entry: AclEntry) -> Bool {
        if let principal, principal != entry.principal { return false }
        if let host, host != entry.host { return false }
        if operation != .any && operation != entry.operation { return false }
        if permission != .any && permission != entry.permission { return false }
        return true
    }
}
