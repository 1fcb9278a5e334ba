import OnceClient

/// The Redis commands a handler's side effect consists of. They run inside the same server-side
/// script as the `SET id NX EX ttl` that claims the event, so they happen exactly when the claim
/// succeeds: a crash cannot separate them.
public final class RedisCommandList: @unchecked Sendable {
    public private(set) var commands: [[String]] = []

    public init() {}

    public func append(_ arguments: String...) {
        precondition(!arguments.isEmpty, "a Redis command needs a name")
        commands.append(arguments)
    }

    public func append(_ arguments: [String]) {
        precondition(!arguments.isEmpty, "a Redis command needs a name")
        commands.append(arguments)
    }
}

/// The seed's `SETNX` with a TTL: an event id is claimed with `SET key NX EX ttl`; the effect
/// (as Redis commands) and the consumer offset are applied by the same Lua script, atomically.
/// Ids expire after `ttl`, so redeliveries older than that are applied again: pick a TTL longer
/// than any redelivery window (consumer lag plus retention of retries).
public final class RedisDedupStore: DedupStore {
    public typealias Transaction = RedisCommandList

    public let connection: RedisConnection
    public let keyPrefix: String
    public let ttl: Duration

    /// Claims the id, then replays the effect commands flattened in ARGV as
    /// `count, name, args...` groups. Returns 1 when applied, 0 for a duplicate.
    static let script = """
        if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
        local i = 2
        while i <= #ARGV do
          local n = tonumber(ARGV[i])
          local command = {}
          for j = 1, n do command[j] = ARGV[i + j] end
          redis.call(unpack(command))
          i = i + n + 1
        end
        return 1
        """

    public init(connection: RedisConnection, keyPrefix: String = "once", ttl: Duration = .seconds(7 * 24 * 3600)) {
        self.connection = connection
        self.keyPrefix = keyPrefix
        self.ttl = ttl
    }

    public func eventKey(group: String, eventId: String) -> String { "\(keyPrefix):processed:\(group):\(eventId)" }
    public func offsetsKey(group: String) -> String { "\(keyPrefix):offsets:\(group)" }

    /// The EVAL arguments for one event: the claim key, the TTL, then each command.
    static func evalArguments(key: String, ttlSeconds: Int64, commands: [[String]]) -> [String] {
        var arguments = ["EVAL", script, "1", key, String(ttlSeconds)]
        for command in commands {
            arguments.append(String(command.count))
            arguments.append(contentsOf: command)
        }
        return arguments
    }

    public func process(
        _ events: [DedupEvent], group: String, effect: (DedupEvent, RedisCommandList) async throws -> Void
    ) async throws -> Int {
        var applied = 0
        let ttlSeconds = max(1, ttl.components.seconds)
        for event in events {
            let commands = RedisCommandList()
            try await effect(event, commands)
            let tp = event.record.topicPartition
            commands.append("HSET", offsetsKey(group: group), "\(tp.topic):\(tp.partition)", String(event.record.offset + 1))
            let reply = try await connection.send(
                Self.evalArguments(key: eventKey(group: group, eventId: event.id), ttlSeconds: ttlSeconds, commands: commands.commands))
            switch reply {
            case .integer(1): applied += 1
            case .integer(0): continue
            case .error(let message): throw RedisError("dedup script: \(message)")
            default: throw RedisError("dedup script: unexpected reply \(reply)")
            }
        }
        return applied
    }

    public func storedOffsets(group: String) async throws -> [TopicPartition: Int64] {
        guard case .array(let items?) = try await connection.command("HGETALL", offsetsKey(group: group)) else { return [:] }
        var result: [TopicPartition: Int64] = [:]
        var i = 0
        while i + 1 < items.count {
            defer { i += 2 }
            guard let field = items[i].string, let value = items[i + 1].string, let next = Int64(value),
                let colon = field.lastIndex(of: ":"), let partition = Int32(field[field.index(after: colon)...])
            else { continue }
            result[TopicPartition(String(field[..<colon]), partition)] = next
        }
        return result
    }
}
