import OnceStorage

extension PostgresLogStorage: SharedProducerIdBlocks {
    /// One statement: the upsert holds the row's lock while it moves the reservation, so two
    /// brokers asking at once get consecutive blocks. The row keeps the 8-byte big-endian end of
    /// the reservation, the document the file engine's allocator writes.
    public func reserveProducerIdBlock(size: Int64) throws -> Int64 {
        try committer.run { c in
            let rows = try c.query(
                """
                INSERT INTO state_documents AS d (name, bytes) VALUES ($1, int8send($2::bigint))
                ON CONFLICT (name) DO UPDATE
                    SET bytes = int8send(('x' || encode(d.bytes, 'hex'))::bit(64)::bigint + $2::bigint)
                RETURNING bytes
                """, [.string(Self.producerIdsDocument), .int64(size)], binaryResults: true)
            return rows.binaryInt64(0, 0) - size
        }
    }

    /// The state document ProducerRegistry names `allocatorStateName`.
    static let producerIdsDocument = "producer-ids"
}
