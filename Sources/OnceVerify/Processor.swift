import OnceCheck
import OnceClient

/// The read-process-write stage: reads the input with read_committed, writes one output record
/// per input record to the same partition of the output topic, and commits the input offsets
/// in the same transaction. After any transaction that did not commit it rewinds to the
/// group's committed offsets, as a real processor must; each rewind is a new reader in the
/// history, because its offsets legitimately go back.
struct Processor: Sendable {
    let inputTopic: String
    let outputTopic: String
    let group: String
    let transactionalId: String
    let configuration: VerifyConfiguration
    let recorder: HistoryRecorder
    let client: KafkaClient

    /// Runs until `writersDone` is set and everything committed in the input is processed, or
    /// until cancelled; returns whether it got that far.
    func run(writersDone: Flag) async -> Bool {
        guard let consumer = await connectConsumer(configuration) else { return false }
        let partitions = (0..<configuration.partitions).map { TopicPartition(inputTopic, $0) }
        // A fresh consumer has no subscription, so assigning cannot fail.
        guard (try? await consumer.assign(partitions)) != nil else { return false }
        var session = TransactionalSession(
            transactionalId: transactionalId, label: "proc", configuration: configuration, recorder: recorder)
        var rewinds = 0
        var rewindNeeded = true
        var reader = ""
        var finished = false
        let forever = ContinuousClock.now + .seconds(86_400 * 365)
        while !Task.isCancelled {
            guard await session.ensureInstance(until: forever) else { break }
            if rewindNeeded {
                do {
                    try await session.settle()
                } catch {
                    await session.abandon(after: error)
                    continue
                }
                guard let committed = try? await client.committedOffsets(group: group) else {
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
                rewinds += 1
                reader = "processor#\(rewinds)"
                for partition in partitions {
                    let position = committed[partition] ?? 0
                    guard (try? await consumer.seek(partition, to: position)) != nil else { return false }
                    recorder.record(.readerStarted(
                        reader: reader, topic: inputTopic, partition: partition.partition, position: position))
                }
                rewindNeeded = false
            }
            let records: [ConsumerRecord]
            do {
                records = try await consumer.poll(timeout: .milliseconds(100))
            } catch {
                if Task.isCancelled { break }
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            if records.isEmpty {
                if writersDone.isSet, await caughtUp(consumer, partitions: partitions, client: client) != nil {
                    finished = true
                    break
                }
                continue
            }
            for record in records {
                recorder.record(.recordRead(
                    reader: reader, topic: inputTopic, partition: record.topicPartition.partition, offset: record.offset,
                    record: record.recordId))
            }
            let transaction: String
            do {
                transaction = try await session.begin()
            } catch {
                await session.abandon(after: error)
                rewindNeeded = true
                continue
            }
            var failure: (any Error)?
            for (n, record) in records.enumerated() {
                do {
                    try await session.send(
                        "\(transaction).\(n)", in: transaction, topic: outputTopic,
                        partition: record.topicPartition.partition, source: record.recordId)
                } catch {
                    failure = error
                    break
                }
            }
            if failure == nil {
                let offsets = Dictionary(records.map { ($0.topicPartition, $0.offset + 1) }, uniquingKeysWith: max)
                do {
                    try await session.sendOffsets(offsets, in: transaction, group: group)
                } catch {
                    failure = error
                }
            }
            if let failure {
                await session.failed(transaction, failure)
                rewindNeeded = true
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let commit = Int.random(in: 0..<200) >= configuration.abortPercent
            if await session.end(transaction, commit: commit) != .committed { rewindNeeded = true }
        }
        await session.close()
        await consumer.close()
        return finished
    }
}
