import ArgumentParser
import OnceClient
import OnceCore

/// `once acl add|list|remove`: the broker's ACLs, with kafka-acls' flags. Each principal is paired
/// with each operation and each named resource, as kafka-acls does.
struct AclCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acl",
        abstract: "Add, list and remove ACLs (the broker needs --authorizer on).",
        subcommands: [Add.self, List.self, Remove.self]
    )

    /// The resources a command names: --topic, --group, --transactional-id, --cluster.
    struct Resources: ParsableArguments {
        @Option(help: "Topic name (repeatable; '*' for every topic)")
        var topic: [String] = []

        @Option(help: "Consumer group id (repeatable; '*' for every group)")
        var group: [String] = []

        @Option(help: "Transactional id (repeatable; '*' for every id)")
        var transactionalId: [String] = []

        @Flag(help: "The cluster resource (kafka-cluster)")
        var cluster = false

        @Option(help: "literal|prefixed (add); also any|match (list, remove). Default: literal, any for list")
        var resourcePatternType: String?

        func patterns() -> [(AclResourceType, String)] {
            topic.map { (.topic, $0) } + group.map { (.group, $0) } + transactionalId.map { (.transactionalId, $0) }
                + (cluster ? [(.cluster, AclResourcePattern.clusterName)] : [])
        }

        func patternType(default fallback: AclPatternType, allowed: [AclPatternType]) throws -> AclPatternType {
            guard let text = resourcePatternType else { return fallback }
            guard let type = allowed.first(where: { $0.name == text.uppercased() }) else {
                throw ValidationError(
                    "--resource-pattern-type takes \(allowed.map { $0.name.lowercased() }.joined(separator: "|")), not '\(text)'")
            }
            return type
        }
    }

    /// Who and what: --allow-principal/--deny-principal, their hosts, and --operation.
    struct Entries: ParsableArguments {
        @Option(help: "Principal granted, e.g. User:alice (repeatable)")
        var allowPrincipal: [String] = []

        @Option(help: "Principal denied (repeatable)")
        var denyPrincipal: [String] = []

        @Option(help: "Host the allow entries apply to (default: *)")
        var allowHost: String = "*"

        @Option(help: "Host the deny entries apply to (default: *)")
        var denyHost: String = "*"

        @Option(help: "Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable)")
        var operation: [String] = []

        func principals() throws -> [(String, String, AclPermission)] {
            for principal in allowPrincipal + denyPrincipal where KafkaPrincipal(parsing: principal) == nil {
                throw ValidationError("a principal is TYPE:NAME, e.g. User:alice, not '\(principal)'")
            }
            return allowPrincipal.map { ($0, allowHost, .allow) } + denyPrincipal.map { ($0, denyHost, .deny) }
        }

        func operations() throws -> [AclOperation] {
            try operation.map { text in
                guard let operation = AclOperation(parsing: text), operation != .any else {
                    throw ValidationError("unknown operation '\(text)'")
                }
                return operation
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add ACLs.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resources: Resources
        @OptionGroup var entries: Entries

        func run() async throws {
            let patternType = try resources.patternType(default: .literal, allowed: [.literal, .prefixed])
            let patterns = resources.patterns()
            let principals = try entries.principals()
            let operations = try entries.operations()
            guard !patterns.isEmpty else { throw ValidationError("name a resource: --topic, --group, --transactional-id or --cluster") }
            guard !principals.isEmpty else { throw ValidationError("name a principal: --allow-principal or --deny-principal") }
            guard !operations.isEmpty else { throw ValidationError("name an operation: --operation") }
            let acls = patterns.flatMap { type, name in
                principals.flatMap { principal, host, permission in
                    operations.map { operation in
                        KafkaAcl(
                            resourceType: type.rawValue, resourceName: name, patternType: patternType.rawValue,
                            principal: principal, host: host, operation: operation.rawValue, permission: permission.rawValue)
                    }
                }
            }
            try await client.withClient { client in
                try await client.createAcls(acls)
                print("Added \(acls.count) ACL\(acls.count == 1 ? "" : "s"):")
                AclCommand.printAcls(acls)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List ACLs (all, or those matching the flags).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resources: Resources

        @Option(help: "Only ACLs naming this principal")
        var principal: String?

        func run() async throws {
            let patternType = try resources.patternType(default: .any, allowed: [.any, .match, .literal, .prefixed])
            let patterns = resources.patterns()
            let filters: [KafkaAcl] =
                patterns.isEmpty
                ? [AclCommand.filter(.any, nil, patternType, principal: principal)]
                : patterns.map { AclCommand.filter($0.0, $0.1, patternType, principal: principal) }
            try await client.withClient { client in
                var seen = Set<KafkaAcl>()
                var found: [KafkaAcl] = []
                for filter in filters {
                    for acl in try await client.describeAcls(filter) where seen.insert(acl).inserted { found.append(acl) }
                }
                AclCommand.printAcls(found)
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove ACLs: those of the named principals and operations, or every ACL on the named resources.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var resources: Resources
        @OptionGroup var entries: Entries

        func run() async throws {
            let patternType = try resources.patternType(default: .literal, allowed: [.any, .match, .literal, .prefixed])
            let patterns = resources.patterns()
            guard !patterns.isEmpty else { throw ValidationError("name a resource: --topic, --group, --transactional-id or --cluster") }
            let principals = try entries.principals()
            let operations = try entries.operations()
            let filters = patterns.flatMap { type, name -> [KafkaAcl] in
                let who: [(String?, String?, AclPermission)] = principals.isEmpty ? [(nil, nil, .any)] : principals.map { ($0, $1, $2) }
                let what: [AclOperation] = operations.isEmpty ? [.any] : operations
                return who.flatMap { principal, host, permission in
                    what.map { operation in
                        KafkaAcl(
                            resourceType: type.rawValue, resourceName: name, patternType: patternType.rawValue,
                            principal: principal, host: host, operation: operation.rawValue, permission: permission.rawValue)
                    }
                }
            }
            try await client.withClient { client in
                let removed = try await client.deleteAcls(filters)
                print("Removed \(removed.count) ACL\(removed.count == 1 ? "" : "s")\(removed.isEmpty ? "." : ":")")
                AclCommand.printAcls(removed)
            }
        }
    }

    static func filter(_ type: AclResourceType, _ name: String?, _ patternType: AclPatternType, principal: String?) -> KafkaAcl {
        KafkaAcl(
            resourceType: type.rawValue, resourceName: name, patternType: patternType.rawValue, principal: principal, host: nil,
            operation: AclOperation.any.rawValue, permission: AclPermission.any.rawValue)
    }

    /// kafka-acls' layout: one heading per resource pattern, one line per entry.
    static func printAcls(_ acls: [KafkaAcl]) {
        var order: [String] = []
        var lines: [String: [String]] = [:]
        for acl in acls {
            let type = AclResourceType(rawValue: acl.resourceType)?.name ?? "\(acl.resourceType)"
            let pattern = AclPatternType(rawValue: acl.patternType)?.name ?? "\(acl.patternType)"
            let heading = "ResourcePattern(resourceType=\(type.uppercased()), name=\(acl.resourceName ?? ""), patternType=\(pattern))"
            if lines[heading] == nil { order.append(heading) }
            let operation = AclOperation(rawValue: acl.operation)?.name ?? "\(acl.operation)"
            let permission = AclPermission(rawValue: acl.permission)?.name ?? "\(acl.permission)"
            lines[heading, default: []].append(
                "\t(principal=\(acl.principal ?? ""), host=\(acl.host ?? ""), operation=\(operation), permissionType=\(permission))")
        }
        for heading in order {
            print("ACLs for \(heading):")
            for line in lines[heading] ?? [] { print(line) }
        }
    }
}
