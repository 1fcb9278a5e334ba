import ArgumentParser
import OnceClient

/// `once group list|describe`: what the group coordinator knows, and how far each group lags.
struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "List, describe and delete consumer groups; reset and delete their committed offsets.",
        subcommands: [List.self, Describe.self, ResetOffsets.self, Delete.self, DeleteOffsets.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List groups: name and state, one per line.")

        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.withClient { client in
                for group in try await client.listGroups() {
                    print(group.state.isEmpty ? group.groupId : "\(group.groupId)\t\(group.state)")
                }
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a group's state, members and assignments, and per partition its committed offset, end offset and lag.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Group id")
        var name: String

        func run() async throws {
            try await client.withClient { client in
                let group = try await client.describeGroup(name)
                let committed = try await client.committedOffsets(group: name)
                if group.state == "Dead" && committed.isEmpty {
                    throw CommandFailure("group '\(name)' does not exist")
                }
                var owner: [TopicPartition: String] = [:]
                for member in group.members {
                    for tp in member.assignment { owner[tp] = member.memberId }
                }
                let partitions = Set(committed.keys).union(owner.keys).sorted {
                    ($0.topic, $0.partition) < ($1.topic, $1.partition)
                }
                let ends = partitions.isEmpty
                    ? [:] : try await client.listOffsets(Dictionary(uniqueKeysWithValues: partitions.map { ($0, .latest) }))

                var protocolLine = group.protocolType.isEmpty ? "-" : group.protocolType
                if !group.protocolName.isEmpty { protocolLine += " (\(group.protocolName))" }
                print("Group: \(name)\tType: \(group.type)\tState: \(group.state)\tProtocol: \(protocolLine)\tMembers: \(group.members.count)")
                for member in group.members {
                    let assigned = member.assignment.map(\.description).joined(separator: ",")
                    var line = "\tMember: \(member.memberId)\tClient: \(member.clientId)"
                    if !member.clientHost.isEmpty { line += "\tHost: \(member.clientHost)" }
                    if let instance = member.groupInstanceId { line += "\tInstance: \(instance)" }
                    line += "\tAssignment: \(assigned.isEmpty ? "-" : assigned)"
                    print(line)
                }
                let rows = partitions.map { tp -> [String] in
                    let end = ends[tp]
                    let offset = committed[tp]
                    let lag = zip2(offset, end).map { String(max(0, $1 - $0)) } ?? "-"
                    return [
                        tp.topic, String(tp.partition), offset.map(String.init) ?? "-", end.map(String.init) ?? "-", lag,
                        owner[tp] ?? "-",
                    ]
                }
                printTable(header: ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"], rows: rows)
            }
        }
    }
}

private func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}

/// Left-aligned columns separated by two spaces.
private func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
        }
        print(cells.joined(separator: "  "))
    }
}
