import OnceCheck

/// Builds small histories the way a recorder would log them, so each test reads as a story.
struct HistoryScript {
    var events: [HistoryEvent] = []

    mutating func initialized(_ instance: String, transactionalId: String = "t1", producerId: Int64 = 1, epoch: Int16) {
        events.append(.producerInitialized(
            transactionalId: transactionalId, instance: instance, producerId: producerId, epoch: epoch))
    }

    mutating func began(
        _ transaction: String, instance: String = "a", transactionalId: String = "t1", producerId: Int64 = 1,
        epoch: Int16 = 0
    ) {
        events.append(.transactionBegan(
            transaction: transaction, transactionalId: transactionalId, instance: instance, producerId: producerId,
            epoch: epoch))
    }

    mutating func sent(
        _ record: String, in transaction: String? = nil, topic: String = "in", partition: Int32 = 0,
        source: String? = nil
    ) {
        events.append(.recordSent(
            record: record, transaction: transaction, topic: topic, partition: partition, key: nil, value: record,
            source: source))
    }

    mutating func acked(_ record: String, at offset: Int64) {
        events.append(.recordAcknowledged(record: record, offset: offset))
    }

    /// A whole transaction: begin, each record sent and acknowledged at its offset, the end.
    mutating func transaction(
        _ id: String, _ records: [(id: String, partition: Int32, offset: Int64)], topic: String = "in",
        outcome: TransactionOutcome?, instance: String = "a", epoch: Int16 = 0
    ) {
        began(id, instance: instance, epoch: epoch)
        for record in records {
            sent(record.id, in: id, topic: topic, partition: record.partition)
            acked(record.id, at: record.offset)
        }
        if let outcome { ended(id, outcome) }
    }

    mutating func ended(_ transaction: String, _ outcome: TransactionOutcome) {
        events.append(.transactionEnded(transaction: transaction, outcome: outcome))
    }

    mutating func started(_ reader: String, topic: String = "in", partition: Int32 = 0, at position: Int64 = 0) {
        events.append(.readerStarted(reader: reader, topic: topic, partition: partition, position: position))
    }

    mutating func read(_ reader: String, _ record: String, at offset: Int64, topic: String = "in", partition: Int32 = 0) {
        events.append(.recordRead(reader: reader, topic: topic, partition: partition, offset: offset, record: record))
    }

    mutating func reachedEnd(_ reader: String, topic: String = "in", partition: Int32 = 0, at position: Int64) {
        events.append(.readerReachedEnd(reader: reader, topic: topic, partition: partition, position: position))
    }

    /// A committed two-record transaction (offsets 0, 1, marker at 2), an aborted one (3, marker
    /// at 4), and a reader that read the partition fully and saw exactly the committed records.
    static var clean: HistoryScript {
        var script = HistoryScript()
        script.initialized("a", epoch: 0)
        script.transaction("T1", [("r1", 0, 0), ("r2", 0, 1)], outcome: .committed)
        script.transaction("T2", [("r3", 0, 3)], outcome: .aborted)
        script.started("reader")
        script.read("reader", "r1", at: 0)
        script.read("reader", "r2", at: 1)
        script.reachedEnd("reader", at: 5)
        return script
    }

    var report: CheckReport { HistoryChecker.check(events) }
}
