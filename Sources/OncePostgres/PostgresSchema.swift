/// The engine's tables, created idempotently at start under an advisory lock so brokers starting
/// together do not race each other's DDL.
enum PostgresSchema {
    static let version = 1

    static let create = """
        BEGIN;
        SELECT pg_advisory_xact_lock(7000013);
        CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL);
        INSERT INTO schema_version SELECT \(version) WHERE NOT EXISTS (SELECT 1 FROM schema_version);
        CREATE TABLE IF NOT EXISTS topics (
            name text PRIMARY KEY, id bytea NOT NULL, partition_count int NOT NULL, configs text[] NOT NULL);
        CREATE TABLE IF NOT EXISTS partition_state (
            topic text NOT NULL, partition int NOT NULL,
            log_start_offset bigint NOT NULL DEFAULT 0, log_end_offset bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (topic, partition));
        CREATE TABLE IF NOT EXISTS partition_leases (
            topic text NOT NULL, partition int NOT NULL, holder int NOT NULL,
            leader_epoch int NOT NULL, expires_at timestamptz NOT NULL,
            PRIMARY KEY (topic, partition));
        CREATE TABLE IF NOT EXISTS batches (
            topic text NOT NULL, partition int NOT NULL, base_offset bigint NOT NULL, last_offset bigint NOT NULL,
            max_timestamp bigint NOT NULL, producer_id bigint NOT NULL, producer_epoch smallint NOT NULL,
            is_transactional bool NOT NULL, is_control bool NOT NULL, bytes bytea NOT NULL,
            PRIMARY KEY (topic, partition, base_offset));
        CREATE TABLE IF NOT EXISTS state_documents (name text PRIMARY KEY, bytes bytea NOT NULL);
        CREATE TABLE IF NOT EXISTS brokers (
            node_id int PRIMARY KEY, incarnation bigint NOT NULL, listeners text NOT NULL, rack text,
            expires_at timestamptz NOT NULL);
        \(PostgresLogStorage.createLeaderEpochs)
        \(appendFunction)
        COMMIT;
        """

    /// One commit round in one statement, so one round trip: the share locks on the lease rows
    /// keep a takeover from committing between the check and the inserts, a lease held at another
    /// epoch or by another node refuses the whole round (SQLSTATE ON001, naming the partitions),
    /// and a first batch that does not start at the stored log end (ON002) means the engine's view
    /// of what is committed is wrong, so it must look again before retrying.
    private static let appendFunction = """
        CREATE OR REPLACE FUNCTION once_append(
            node int, topics text[], parts int[], epochs int[], bases bigint[], lasts bigint[], max_ts bigint[],
            pids bigint[], pepochs smallint[], txns bool[], ctrls bool[], data bytea[]) RETURNS int
        LANGUAGE plpgsql AS $body$
        DECLARE
            refused text;
        BEGIN
            PERFORM 1 FROM partition_leases l
                WHERE (l.topic, l.partition) IN (SELECT t, p FROM unnest(topics, parts) AS x(t, p))
                FOR SHARE;
            SELECT string_agg(u.t || '/' || u.p, ',') INTO refused
                FROM (SELECT DISTINCT t, p, e FROM unnest(topics, parts, epochs) AS x(t, p, e)) u
                LEFT JOIN partition_leases l
                    ON l.topic = u.t AND l.partition = u.p AND l.holder = node AND l.leader_epoch = u.e
                WHERE l.topic IS NULL;
            IF refused IS NOT NULL THEN
                RAISE EXCEPTION 'lease lost: %', refused USING ERRCODE = 'ON001';
            END IF;
            SELECT string_agg(f.t || '/' || f.p, ',') INTO refused
                FROM (SELECT t, p, min(b) AS first FROM unnest(topics, parts, bases) AS x(t, p, b) GROUP BY t, p) f
                LEFT JOIN partition_state s ON s.topic = f.t AND s.partition = f.p
                WHERE s.log_end_offset IS DISTINCT FROM f.first;
            IF refused IS NOT NULL THEN
                RAISE EXCEPTION 'not at the log end: %', refused USING ERRCODE = 'ON002';
            END IF;
            INSERT INTO batches
                SELECT * FROM unnest(topics, parts, bases, lasts, max_ts, pids, pepochs, txns, ctrls, data);
            UPDATE partition_state s SET log_end_offset = f.next
                FROM (SELECT t, p, max(l) + 1 AS next FROM unnest(topics, parts, lasts) AS x(t, p, l) GROUP BY t, p) f
                WHERE s.topic = f.t AND s.partition = f.p;
            RETURN cardinality(bases);
        END
        $body$;
        """

    /// Takes the leases of the named partitions for `node` at one epoch more than any holder had:
    /// from here on every append of an older holder is refused. The same statement records each
    /// epoch taken at the partition's stored log end, so the history never misses one.
    static let takeLeases = """
        WITH taken AS (
            INSERT INTO partition_leases (topic, partition, holder, leader_epoch, expires_at)
                SELECT t, p, $1, 0, now() + $4::bigint * interval '1 millisecond' FROM unnest($2::text[], $3::int[]) AS x(t, p)
            ON CONFLICT (topic, partition) DO UPDATE
                SET leader_epoch = partition_leases.leader_epoch + 1, expires_at = EXCLUDED.expires_at
                WHERE partition_leases.holder = EXCLUDED.holder
            RETURNING topic, partition, leader_epoch),
        recorded AS (
            INSERT INTO partition_leader_epochs
                SELECT t.topic, t.partition, t.leader_epoch, coalesce(s.log_end_offset, 0) FROM taken t
                    LEFT JOIN partition_state s ON s.topic = t.topic AND s.partition = t.partition
            ON CONFLICT (topic, partition, leader_epoch) DO UPDATE SET start_offset = EXCLUDED.start_offset)
        SELECT topic, partition, leader_epoch FROM taken
        """
}
