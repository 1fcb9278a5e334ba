import OnceStorage

/// Membership over the `brokers` table. Liveness is judged by the database's clock alone
/// (`now()`), so brokers whose clocks disagree still agree on who is alive.
extension PostgresLogStorage: ClusterDatabase {
    /// Inserts this broker's row, or takes over a row whose heartbeat expired. A row still live
    /// is waited out once (a restart after SIGKILL finds its own stale row): if its expiry moved
    /// meanwhile, another broker is heartbeating it and `DuplicateNodeId` is thrown.
    public func register(
        incarnation: Int64, listeners: String, rack: String?, sessionTimeoutMs: Int64,
        sleep: (Int64) async throws -> Void
    ) async throws {
        let nodeId = self.nodeId
        var waited = false
        while true {
            let left = try committer.run { c -> Int64? in
                let taken = try c.query(
                    """
                    INSERT INTO brokers (node_id, incarnation, listeners, rack, expires_at)
                        VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 millisecond')
                    ON CONFLICT (node_id) DO UPDATE
                        SET incarnation = EXCLUDED.incarnation, listeners = EXCLUDED.listeners, rack = EXCLUDED.rack,
                            expires_at = EXCLUDED.expires_at
                        WHERE brokers.expires_at <= now()
                    RETURNING node_id
                    """,
                    // An empty rack stands for none: the parameter encoding has no NULL.
                    [.int32(nodeId), .int64(incarnation), .string(listeners), .string(rack ?? ""), .int64(sessionTimeoutMs)])
                if taken.count > 0 { return nil }
                let row = try c.query(
                    "SELECT ceil(extract(epoch FROM expires_at - now()) * 1000)::bigint FROM brokers WHERE node_id = $1",
                    [.int32(nodeId)])
                return row.count > 0 ? max(0, row.int(0, 0)) : 0
            }
            guard let left else { return }
            guard !waited else { throw DuplicateNodeId(nodeId: nodeId) }
            waited = true
            try await sleep(left + 100)
        }
    }

    /// Renews this broker's row and every lease it still holds, in one statement; a lease handed
    /// off (expired at -infinity) stays released for the broker it was handed to.
    public func heartbeat(incarnation: Int64, sessionTimeoutMs: Int64) throws -> HeartbeatOutcome {
        let nodeId = self.nodeId
        return try committer.run { c in
            let rows = try c.query(
                """
                WITH before AS (SELECT expires_at <= now() AS expired FROM brokers WHERE node_id = $1 AND incarnation = $2),
                me AS (
                    UPDATE brokers SET expires_at = now() + $3::bigint * interval '1 millisecond'
                    WHERE node_id = $1 AND incarnation = $2 RETURNING node_id),
                renewed AS (
                    UPDATE partition_leases SET expires_at = now() + $3::bigint * interval '1 millisecond'
                    WHERE holder = $1 AND expires_at <> '-infinity' AND EXISTS (SELECT 1 FROM me) RETURNING 1)
                SELECT (SELECT count(*) FROM me), (SELECT count(*) FROM renewed), coalesce((SELECT expired FROM before), false)
                """,
                [.int32(nodeId), .int64(incarnation), .int64(sessionTimeoutMs)])
            guard rows.int(0, 0) == 1 else { return .replaced }
            return .renewed(leases: Int(rows.int(0, 1)), hadExpired: rows.text(0, 2) == "t")
        }
    }

    /// Gives a partition's lease up so the broker the placement names takes it at its next
    /// heartbeat: the caller already stopped accepting appends, and the ones accepted before are
    /// committed first, so none is refused by the new leader's epoch after it was accepted here.
    /// Only the lease held at `epoch` is released; a newer one is not this broker's to give.
    public func handOff(topic: String, partition: Int32, epoch: Int32) throws {
        let nodeId = self.nodeId
        try drain([self.partition(topic: topic, partition: partition)].compactMap { $0 as? PostgresPartitionLog })
        try committer.run { c in
            _ = try c.query(
                """
                UPDATE partition_leases SET expires_at = '-infinity'
                WHERE topic = $1 AND partition = $2 AND holder = $3 AND leader_epoch = $4
                """,
                [.string(topic), .int32(partition), .int32(nodeId), .int32(epoch)])
        }
    }

    /// Waits until the appends queued to `logs` committed. A statement runs before its round's
    /// appends, so one empty statement is not enough: rounds pass until nothing is pending. A
    /// database that stays unreachable makes the statement throw, which ends the wait.
    private func drain(_ logs: [PostgresPartitionLog]) throws {
        while logs.contains(where: \.hasPending) {
            committer.wantCommit()
            try committer.run { _ in }
        }
    }

    /// Removes this broker's row at a graceful shutdown and releases its leases (they expire now),
    /// so the others stop naming it at once and take its partitions at their next heartbeat
    /// instead of waiting out the session. An append still queued after this commits only if no
    /// one took the partition yet: the epoch check refuses it otherwise, and it was not acknowledged.
    public func deregister(incarnation: Int64) throws {
        let nodeId = self.nodeId
        try drain(loadedPartitions().compactMap { $0 as? PostgresPartitionLog })
        try committer.run { c in
            _ = try c.query(
                """
                WITH gone AS (DELETE FROM brokers WHERE node_id = $1 AND incarnation = $2 RETURNING node_id)
                UPDATE partition_leases SET expires_at = now() WHERE holder = $1 AND EXISTS (SELECT 1 FROM gone)
                """,
                [.int32(nodeId), .int64(incarnation)])
        }
    }

    /// Live brokers in node-id order and every lease row, read in one snapshot.
    public func membership() throws -> (brokers: [RegisteredBroker], leases: [HeldLease]) {
        try committer.run { c in
            let rows = try c.query(
                "SELECT node_id, listeners, coalesce(rack, '') FROM brokers WHERE expires_at > now() ORDER BY node_id")
            let brokers = (0..<rows.count).map { r in
                RegisteredBroker(
                    nodeId: Int32(rows.int(r, 0)), listeners: rows.text(r, 1), rack: rows.text(r, 2).isEmpty ? nil : rows.text(r, 2))
            }
            let leases = try c.query(
                """
                SELECT l.topic, l.partition, l.holder, l.leader_epoch,
                        l.expires_at > now() AND coalesce(b.expires_at > now(), false)
                    FROM partition_leases l LEFT JOIN brokers b ON b.node_id = l.holder
                """)
            return (brokers, (0..<leases.count).map { r in
                HeldLease(
                    topic: leases.text(r, 0), partition: Int32(leases.int(r, 1)), holder: Int32(leases.int(r, 2)),
                    leaderEpoch: Int32(leases.int(r, 3)), live: leases.text(r, 4) == "t")
            })
        }
    }
}
