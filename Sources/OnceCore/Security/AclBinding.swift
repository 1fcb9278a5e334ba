/// Kafka's ACL vocabulary, with Kafka's wire codes as raw values so the broker converts requests
/// without a table and the stored form reads like the protocol.

/// What an ACL protects (Kafka's `ResourceType`). `any` and `unknown` only appear in filters.
public enum AclResourceType: Int8, Sendable, Codable, CaseIterable {
    case unknown = 0, any = 1, topic = 2, group = 3, cluster = 4, transactionalId = 5, delegationToken = 6, user = 7

    /// The kafka-acls spelling (`Topic`, `TransactionalId`), as DescribeAcls output and `once acl` show it.
    public var name: String {
        switch self {
        case .unknown: "Unknown"
        case .any: "Any"
        case .topic: "Topic"
        case .group: "Group"
        case .cluster: "Cluster"
        case .transactionalId: "TransactionalId"
        case .delegationToken: "DelegationToken"
        case .user: "User"
        }
    }
}

/// How an ACL's resource name matches (Kafka's `PatternType`). `any` and `match` only appear in filters.
public enum AclPatternType: Int8, Sendable, Codable, CaseIterable {
    case unknown = 0, any = 1, match = 2, literal = 3, prefixed = 4

    public var name: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .match: "MATCH"
        case .literal: "LITERAL"
        case .prefixed: "PREFIXED"
        }
    }
}

/// Kafka's `AclOperation`; the raw values are also the bit numbers of KIP-430's authorized-operations fields.
public enum AclOperation: Int8, Sendable, Codable, CaseIterable {
    case unknown = 0, any = 1, all = 2, read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8
    case clusterAction = 9, describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12
    case createTokens = 13, describeTokens = 14

    public var name: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .all: "ALL"
        case .read: "READ"
        case .write: "WRITE"
        case .create: "CREATE"
        case .delete: "DELETE"
        case .alter: "ALTER"
        case .describe: "DESCRIBE"
        case .clusterAction: "CLUSTER_ACTION"
        case .describeConfigs: "DESCRIBE_CONFIGS"
        case .alterConfigs: "ALTER_CONFIGS"
        case .idempotentWrite: "IDEMPOTENT_WRITE"
        case .createTokens: "CREATE_TOKENS"
        case .describeTokens: "DESCRIBE_TOKENS"
        }
    }

    /// Parses kafka-acls' spellings: `Read`, `READ`, `IdempotentWrite`, `IDEMPOTENT_WRITE`.
    public init?(parsing text: String) {
        let key = text.uppercased().replacingUnderscores()
        guard let found = Self.allCases.first(where: { $0.name.replacingUnderscores() == key }), found != .unknown else {
            return nil
        }
        self = found
    }
}

/// Kafka's `AclPermissionType`.
public enum AclPermission: Int8, Sendable, Codable, CaseIterable {
    case unknown = 0, any = 1, deny = 2, allow = 3

    public var name: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .any: "ANY"
        case .deny: "DENY"
        case .allow: "ALLOW"
        }
    }
}

/// The resources an ACL covers: one name, every name with a prefix, or every name (`*`, literal).
public struct AclResourcePattern: Hashable, Sendable, Codable {
    /// The name that makes a LITERAL pattern match every resource of its type.
    public static let wildcard = "*"
    /// The one name a CLUSTER resource has.
    public static let clusterName = "kafka-cluster"

    public var resourceType: AclResourceType
    public var name: String
    public var patternType: AclPatternType

    public init(_ resourceType: AclResourceType, _ name: String, _ patternType: AclPatternType = .literal) {
        self.resourceType = resourceType
        self.name = name
        self.patternType = patternType
    }

    /// Whether this pattern covers the resource `name` (of its own type).
    public func covers(_ resourceName: String) -> Bool {
        switch patternType {
        case .literal: name == resourceName || name == Self.wildcard
        // Byte-wise, as Kafka compares names character by character without normalizing them.
        case .prefixed: resourceName.utf8.starts(with: name.utf8)
        default: false
        }
    }
}

/// Who may or may not do what from where (Kafka's `AccessControlEntry`). `*` in principal or host
/// matches every principal (`User:*`) or every address.
public struct AclEntry: Hashable, Sendable, Codable {
    public static let wildcardHost = "*"
    public static let wildcardPrincipal = "User:*"

    public var principal: String
    public var host: String
    public var operation: AclOperation
    public var permission: AclPermission

    public init(principal: String, host: String = AclEntry.wildcardHost, operation: AclOperation, permission: AclPermission) {
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }
}

/// One stored ACL.
public struct AclBinding: Hashable, Sendable, Codable {
    public var pattern: AclResourcePattern
    public var entry: AclEntry

    public init(pattern: AclResourcePattern, entry: AclEntry) {
        self.pattern = pattern
        self.entry = entry
    }

    /// Why CreateAcls refuses this binding (INVALID_REQUEST), as Kafka's AclControlManager and
    /// AclApis word it; nil when it may be stored.
    public var invalidReason: String? {
        switch pattern.resourceType {
        case .unknown, .any: return "Invalid resourceType \(pattern.resourceType.name)"
        default: break
        }
        guard pattern.patternType == .literal || pattern.patternType == .prefixed else {
            return "Invalid patternType \(pattern.patternType.name)"
        }
        if entry.operation == .unknown || entry.operation == .any { return "Invalid operation \(entry.operation.name)" }
        if entry.permission != .allow && entry.permission != .deny {
            return "Invalid permissionType \(entry.permission.name)"
        }
        if pattern.name.isEmpty { return "Invalid empty resource name" }
        if pattern.resourceType == .cluster && pattern.name != AclResourcePattern.clusterName {
            return "The only valid name for the CLUSTER resource is \(AclResourcePattern.clusterName)"
        }
        if KafkaPrincipal(parsing: entry.principal) == nil { return "Could not parse principal \(entry.principal)" }
        if entry.host.isEmpty { return "Invalid empty host" }
        return nil
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
