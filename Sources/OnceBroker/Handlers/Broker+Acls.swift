import KafkaProtocol
import OnceCore

/// CreateAcls, DescribeAcls and DeleteAcls, as Kafka's AclApis answers them: Cluster ALTER (create,
/// delete) or DESCRIBE (describe) first, SECURITY_DISABLED without an authorizer, INVALID_REQUEST
/// for a binding or filter that names nothing definite. Changes are durable before they are answered.
extension Broker {
    func createAcls(_ req: CreateAclsRequest, _ request: Request) -> CreateAclsResponse {
        var response = CreateAclsResponse()
        func all(_ code: ErrorCode, _ message: String) -> CreateAclsResponse {
            response.results = req.creations.map { _ in
                var result = CreateAclsResponse.AclCreationResult()
                result.errorCode = code.rawValue
                result.errorMessage = message
                return result
            }
            return response
        }
        guard authorization(request).allowsCluster(.alter) else {
            return all(.clusterAuthorizationFailed, "Cluster authorization failed.")
        }
        guard let acls else { return all(.securityDisabled, "No Authorizer is configured.") }
        let bindings = req.creations.map { creation in
            AclBinding(
                pattern: AclResourcePattern(
                    AclResourceType(rawValue: creation.resourceType) ?? .unknown, creation.resourceName,
                    AclPatternType(rawValue: creation.resourcePatternType) ?? .unknown),
                entry: AclEntry(
                    principal: creation.principal, host: creation.host,
                    operation: AclOperation(rawValue: creation.operation) ?? .unknown,
                    permission: AclPermission(rawValue: creation.permissionType) ?? .unknown))
        }
        var results = bindings.map { binding in
            var result = CreateAclsResponse.AclCreationResult()
            if let reason = binding.invalidReason {
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = reason
            } else {
                result.errorMessage = nil
            }
            return result
        }
        let valid = zip(bindings, results).filter { $0.1.errorCode == 0 }.map(\.0)
        do {
            try acls.add(valid)
            if !valid.isEmpty {
                logger.info("ACLs created", metadata: ["by": "\(request.session.principal)", "acls": "\(valid.map(Self.describe))"])
            }
        } catch {
            logger.error("storing ACLs failed", metadata: ["error": "\(error)"])
            for i in results.indices where results[i].errorCode == 0 {
                results[i].errorCode = ErrorCode.unknownServerError.rawValue
                results[i].errorMessage = "storing the ACL failed"
            }
        }
        response.results = results
        return response
    }

    func describeAcls(_ req: DescribeAclsRequest, _ request: Request) -> DescribeAclsResponse {
        var response = DescribeAclsResponse()
        guard authorization(request).allowsCluster(.describe) else {
            response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
            response.errorMessage = "Cluster authorization failed."
            return response
        }
        guard let acls else {
            response.errorCode = ErrorCode.securityDisabled.rawValue
            response.errorMessage = "No Authorizer is configured on the broker"
            return response
        }
        let filter = Self.filter(
            req.resourceTypeFilter, req.resourceNameFilter, req.patternTypeFilter, req.principalFilter, req.hostFilter,
            req.operation, req.permissionType)
        if let reason = filter.invalidReason {
            response.errorCode = ErrorCode.invalidRequest.rawValue
            response.errorMessage = reason
            return response
        }
        response.errorMessage = nil
        var order: [AclResourcePattern] = []
        var byPattern: [AclResourcePattern: [DescribeAclsResponse.AclDescription]] = [:]
        for binding in acls.current.bindings where filter.matches(binding) {
            if byPattern[binding.pattern] == nil { order.append(binding.pattern) }
            var description = DescribeAclsResponse.AclDescription()
            description.principal = binding.entry.principal
            description.host = binding.entry.host
            description.operation = binding.entry.operation.rawValue
            description.permissionType = binding.entry.permission.rawValue
            byPattern[binding.pattern, default: []].append(description)
        }
        response.resources = order.map { pattern in
            var resource = DescribeAclsResponse.DescribeAclsResource()
            resource.resourceType = pattern.resourceType.rawValue
            resource.resourceName = pattern.name
            resource.patternType = pattern.patternType.rawValue
            resource.acls = byPattern[pattern] ?? []
            return resource
        }
        return response
    }

    func deleteAcls(_ req: DeleteAclsRequest, _ request: Request) -> DeleteAclsResponse {
        var response = DeleteAclsResponse()
        func all(_ code: ErrorCode, _ message: String) -> DeleteAclsResponse {
            response.filterResults = req.filters.map { _ in
                var result = DeleteAclsResponse.DeleteAclsFilterResult()
                result.errorCode = code.rawValue
                result.errorMessage = message
                return result
            }
            return response
        }
        guard authorization(request).allowsCluster(.alter) else {
            return all(.clusterAuthorizationFailed, "Cluster authorization failed.")
        }
        guard let acls else { return all(.securityDisabled, "No Authorizer is configured.") }
        let filters = req.filters.map {
            Self.filter(
                $0.resourceTypeFilter, $0.resourceNameFilter, $0.patternTypeFilter, $0.principalFilter, $0.hostFilter,
                $0.operation, $0.permissionType)
        }
        let usable = filters.filter { $0.invalidReason == nil }
        let removed: [[AclBinding]]
        do {
            removed = try acls.remove(matching: usable)
        } catch {
            logger.error("storing ACLs failed", metadata: ["error": "\(error)"])
            return all(.unknownServerError, "storing the ACL change failed")
        }
        var next = removed.makeIterator()
        response.filterResults = filters.map { filter in
            var result = DeleteAclsResponse.DeleteAclsFilterResult()
            if let reason = filter.invalidReason {
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = reason
                return result
            }
            result.errorMessage = nil
            result.matchingAcls = (next.next() ?? []).map { binding in
                var matching = DeleteAclsResponse.DeleteAclsMatchingAcl()
                matching.errorMessage = nil
                matching.resourceType = binding.pattern.resourceType.rawValue
                matching.resourceName = binding.pattern.name
                matching.patternType = binding.pattern.patternType.rawValue
                matching.principal = binding.entry.principal
                matching.host = binding.entry.host
                matching.operation = binding.entry.operation.rawValue
                matching.permissionType = binding.entry.permission.rawValue
                return matching
            }
            return result
        }
        let count = removed.reduce(0) { $0 + $1.count }
        if count > 0 { logger.info("ACLs deleted", metadata: ["by": "\(request.session.principal)", "count": "\(count)"]) }
        return response
    }

    private static func filter(
        _ type: Int8, _ name: String?, _ pattern: Int8, _ principal: String?, _ host: String?, _ operation: Int8, _ permission: Int8
    ) -> AclBindingFilter {
        AclBindingFilter(
            resourceType: AclResourceType(rawValue: type) ?? .unknown, resourceName: name,
            patternType: AclPatternType(rawValue: pattern) ?? .unknown, principal: principal, host: host,
            operation: AclOperation(rawValue: operation) ?? .unknown, permission: AclPermission(rawValue: permission) ?? .unknown)
    }

    private static func describe(_ binding: AclBinding) -> String {
        "\(binding.entry.permission.name) \(binding.entry.principal)@\(binding.entry.host) \(binding.entry.operation.name) "
            + "\(binding.pattern.resourceType.name):\(binding.pattern.patternType.name):\(binding.pattern.name)"
    }
}
