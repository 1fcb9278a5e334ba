import Testing

@testable import OnceCore

/// Kafka's documented authorizer cases (StandardAuthorizerTest, AclAuthorizerTest, the ACL docs).
@Suite struct AclAuthorizerTests {
    let alice = KafkaPrincipal(name: "alice")
    let bob = KafkaPrincipal(name: "bob")

    func acl(
        _ type: AclResourceType, _ name: String, pattern: AclPatternType = .literal, principal: String = "User:alice",
        host: String = "*", _ operation: AclOperation, _ permission: AclPermission = .allow
    ) -> AclBinding {
        AclBinding(pattern: AclResourcePattern(type, name, pattern), entry: AclEntry(principal: principal, host: host, operation: operation, permission: permission))
    }

    @Test func superUserMayDoAnythingEvenWhenDenied() {
        let authorizer = AclAuthorizer(bindings: [acl(.topic, "*", principal: "User:*", .all, .deny)], superUsers: ["User:alice"])
        #expect(authorizer.authorize(alice, host: "127.0.0.1", .delete, .topic, "payments"))
        #expect(!authorizer.authorize(bob, host: "127.0.0.1", .read, .topic, "payments"))
    }

    @Test func noAclFoundFollowsTheDefault() {
        let strict = AclAuthorizer(bindings: [acl(.topic, "other", .read)])
        #expect(!strict.authorize(alice, host: "h", .read, .topic, "payments"))
        let open = AclAuthorizer(bindings: [acl(.topic, "other", .read)], allowEveryoneIfNoAclFound: true)
        #expect(open.authorize(bob, host: "h", .read, .topic, "payments"))
        // An ACL on the resource for someone else means "no ACL found" no longer applies.
        #expect(!open.authorize(bob, host: "h", .read, .topic, "other"))
    }

    @Test func denyWinsOverAllow() {
        let authorizer = AclAuthorizer(bindings: [
            acl(.topic, "payments", .read), acl(.topic, "pay", pattern: .prefixed, .read, .deny),
        ])
        #expect(!authorizer.authorize(alice, host: "h", .read, .topic, "payments"))
        // DENY READ does not deny what READ would imply: DESCRIBE still needs its own grant.
        #expect(authorizer.authorize(alice, host: "h", .describe, .topic, "payments"))
    }

    @Test func denyAllDeniesEveryOperation() {
        let authorizer = AclAuthorizer(bindings: [acl(.group, "g", .all), acl(.group, "g", principal: "User:alice", .all, .deny)])
        for operation in [AclOperation.read, .describe, .delete] {
            #expect(!authorizer.authorize(alice, host: "h", operation, .group, "g"))
        }
    }

    @Test func impliedOperations() {
        let authorizer = AclAuthorizer(bindings: [
            acl(.topic, "r", .read), acl(.topic, "w", .write), acl(.topic, "d", .delete), acl(.topic, "a", .alter),
            acl(.topic, "ac", .alterConfigs), acl(.topic, "all", .all),
        ])
        for name in ["r", "w", "d", "a", "all"] {
            #expect(authorizer.authorize(alice, host: "h", .describe, .topic, name), "\(name)")
        }
        #expect(!authorizer.authorize(alice, host: "h", .describe, .topic, "ac"))
        #expect(authorizer.authorize(alice, host: "h", .describeConfigs, .topic, "ac"))
        #expect(!authorizer.authorize(alice, host: "h", .alterConfigs, .topic, "r"))
        #expect(!authorizer.authorize(alice, host: "h", .write, .topic, "r"))
        #expect(!authorizer.authorize(alice, host: "h", .read, .topic, "w"))
        #expect(authorizer.authorize(alice, host: "h", .clusterAction, .topic, "all"))
    }

    @Test func wildcardResourcePrincipalAndHost() {
        let authorizer = AclAuthorizer(bindings: [
            acl(.topic, "*", principal: "User:*", .read), acl(.topic, "secret", principal: "User:*", host: "10.0.0.9", .read, .deny),
            acl(.group, "g", host: "127.0.0.1", .read),
        ])
        #expect(authorizer.authorize(bob, host: "h", .read, .topic, "anything"))
        #expect(authorizer.authorize(bob, host: "127.0.0.1", .read, .topic, "secret"))
        #expect(!authorizer.authorize(bob, host: "10.0.0.9", .read, .topic, "secret"))
        #expect(authorizer.authorize(alice, host: "127.0.0.1", .read, .group, "g"))
        #expect(!authorizer.authorize(alice, host: "127.0.0.2", .read, .group, "g"))
    }

    @Test func prefixedPatternsMatchByPrefixLiteralOnlyExactly() {
        let authorizer = AclAuthorizer(bindings: [acl(.topic, "app-", pattern: .prefixed, .write), acl(.topic, "log", .write)])
        #expect(authorizer.authorize(alice, host: "h", .write, .topic, "app-orders"))
        #expect(authorizer.authorize(alice, host: "h", .write, .topic, "app-"))
        #expect(!authorizer.authorize(alice, host: "h", .write, .topic, "app"))
        #expect(authorizer.authorize(alice, host: "h", .write, .topic, "log"))
        #expect(!authorizer.authorize(alice, host: "h", .write, .topic, "logs"))
        // A literal "*" name is a wildcard; a prefixed "*" is just the character.
        let star = AclAuthorizer(bindings: [acl(.topic, "*", pattern: .prefixed, .read)])
        #expect(!star.authorize(alice, host: "h", .read, .topic, "orders"))
    }

    @Test func everyCoveringPrefixOfEveryLengthCounts() {
        let authorizer = AclAuthorizer(bindings: [
            acl(.topic, "a", pattern: .prefixed, .read), acl(.topic, "ab-", pattern: .prefixed, .read, .deny),
            acl(.topic, "zz", pattern: .prefixed, .read), acl(.topic, "é", pattern: .prefixed, .write),
            acl(.topic, "abc", pattern: .prefixed, .write),
        ])
        #expect(authorizer.authorize(alice, host: "h", .read, .topic, "abc"))
        #expect(authorizer.authorize(alice, host: "h", .write, .topic, "abcd"))
        #expect(!authorizer.authorize(alice, host: "h", .read, .topic, "ab-x"))
        #expect(authorizer.authorize(alice, host: "h", .read, .topic, "zzz"))
        #expect(!authorizer.authorize(alice, host: "h", .read, .topic, "z"))
        #expect(authorizer.authorize(alice, host: "h", .write, .topic, "éa"))
        #expect(!authorizer.authorize(alice, host: "h", .write, .topic, "e"))
        // A two-byte first character: the one-byte cut falls inside it and matches nothing.
        #expect(!authorizer.authorize(alice, host: "h", .read, .topic, "ña"))
    }

    @Test func resourceTypesAreSeparate() {
        let authorizer = AclAuthorizer(bindings: [acl(.transactionalId, "app", .write)])
        #expect(authorizer.authorize(alice, host: "h", .write, .transactionalId, "app"))
        #expect(!authorizer.authorize(alice, host: "h", .write, .topic, "app"))
        #expect(!authorizer.authorize(alice, host: "h", .write, .group, "app"))
    }

    @Test func authorizeAnyFollowsKafkasAuthorizeByResourceType() {
        #expect(AclAuthorizer(bindings: [acl(.topic, "orders", .write)]).authorizeAny(alice, host: "h", .write, .topic))
        #expect(!AclAuthorizer(bindings: [acl(.topic, "orders", .read)]).authorizeAny(alice, host: "h", .write, .topic))
        // A literal DENY on the same name, or a DENY on a prefix of it, dominates the ALLOW.
        #expect(!AclAuthorizer(bindings: [acl(.topic, "orders", .write), acl(.topic, "orders", .write, .deny)]).authorizeAny(alice, host: "h", .write, .topic))
        #expect(!AclAuthorizer(bindings: [acl(.topic, "orders", .write), acl(.topic, "ord", pattern: .prefixed, .write, .deny)]).authorizeAny(alice, host: "h", .write, .topic))
        #expect(AclAuthorizer(bindings: [acl(.topic, "orders", .write), acl(.topic, "x", pattern: .prefixed, .write, .deny)]).authorizeAny(alice, host: "h", .write, .topic))
        #expect(!AclAuthorizer(bindings: [acl(.topic, "orders", .write), acl(.topic, "*", .write, .deny)]).authorizeAny(alice, host: "h", .write, .topic))
        #expect(AclAuthorizer(bindings: [acl(.topic, "*", .all)]).authorizeAny(alice, host: "h", .write, .topic))
        #expect(AclAuthorizer(bindings: [], superUsers: ["User:bob"]).authorizeAny(bob, host: "h", .write, .topic))
        #expect(AclAuthorizer(bindings: [], allowEveryoneIfNoAclFound: true).authorizeAny(bob, host: "h", .write, .topic))
    }

    @Test func authorizedOperationsAreTheGrantedSet() {
        let authorizer = AclAuthorizer(bindings: [acl(.topic, "t", .read), acl(.topic, "t", .alterConfigs)])
        let ops = authorizer.authorizedOperations(alice, host: "h", .topic, "t", among: [.read, .write, .describe, .describeConfigs, .alterConfigs, .delete])
        #expect(ops == [.read, .describe, .describeConfigs, .alterConfigs])
    }

    @Test func duplicateBindingsAreStoredOnce() {
        let binding = acl(.topic, "t", .read)
        #expect(AclAuthorizer(bindings: [binding, binding]).bindings == [binding])
    }

    @Test func invalidBindingsAreNamed() {
        #expect(acl(.topic, "t", .read).invalidReason == nil)
        #expect(acl(.any, "t", .read).invalidReason != nil)
        #expect(acl(.topic, "t", pattern: .match, .read).invalidReason != nil)
        #expect(acl(.topic, "t", .any).invalidReason != nil)
        #expect(acl(.topic, "t", .read, .any).invalidReason != nil)
        #expect(acl(.topic, "", .read).invalidReason != nil)
        #expect(acl(.cluster, "other", .alter).invalidReason != nil)
        #expect(acl(.cluster, "kafka-cluster", .alter).invalidReason == nil)
        #expect(acl(.topic, "t", principal: "alice", .read).invalidReason != nil)
    }

    @Test func filtersMatchAsKafkasAclBindingFilter() {
        let literal = acl(.topic, "payments", .read)
        let wildcard = acl(.topic, "*", .read)
        let prefixed = acl(.topic, "pay", pattern: .prefixed, .read)
        let other = acl(.group, "payments", principal: "User:bob", .read, .deny)
        let all = [literal, wildcard, prefixed, other]
        func select(_ filter: AclBindingFilter) -> [AclBinding] { all.filter(filter.matches) }
        #expect(select(AclBindingFilter()) == all)
        #expect(select(AclBindingFilter(resourceType: .topic, resourceName: "payments", patternType: .match)) == [literal, wildcard, prefixed])
        #expect(select(AclBindingFilter(resourceType: .topic, resourceName: "payments", patternType: .literal)) == [literal])
        #expect(select(AclBindingFilter(resourceName: "payments")) == [literal, other])
        #expect(select(AclBindingFilter(patternType: .prefixed)) == [prefixed])
        #expect(select(AclBindingFilter(principal: "User:bob")) == [other])
        #expect(select(AclBindingFilter(permission: .deny)) == [other])
        #expect(select(AclBindingFilter(resourceType: .topic, host: "10.0.0.1")).isEmpty)
        #expect(AclBindingFilter(resourceType: .unknown).invalidReason != nil)
        #expect(AclBindingFilter(operation: .unknown).invalidReason != nil)
        #expect(AclBindingFilter().invalidReason == nil)
    }

    @Test func operationNamesParseInKafkaAclsSpellings() {
        #expect(AclOperation(parsing: "Read") == .read)
        #expect(AclOperation(parsing: "IdempotentWrite") == .idempotentWrite)
        #expect(AclOperation(parsing: "DESCRIBE_CONFIGS") == .describeConfigs)
        #expect(AclOperation(parsing: "Reed") == nil)
    }
}
