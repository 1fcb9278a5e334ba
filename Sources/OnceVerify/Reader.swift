import OnceCheck
import OnceClient

/// The checking reader: reads every partition of both topics with read_committed from the
/// beginning, and once told to drain, keeps reading until it has caught up everywhere.
struct Reader: Sendable {
    let topics: [String]
    let configuration: VerifyConfiguration
    let recorder: HistoryRecorder
    let client: KafkaClient

    /// Returns whether it caught up before `drainDeadline` (read after `drain` is set).
    func run(drain: Flag, drainDeadline: @Sendable () -> ContinuousClock.Instant) async -> Bool {
        guard let consumer = await connectConsumer(configuration) else { return false }
        let partitions = topics.flatMap { topic in (0..<configuration.partitions).map { TopicPartition(topic, $0) } }
        // A fresh consumer has no subscription, so assigning cannot fail.
        guard (try? await consumer.assign(partitions)) != nil else { return false }
        for partition in partitions {
            guard (try? await consumer.seek(partition, to: 0)) != nil else { return false }
            recorder.record(.readerStarted(
                reader: "reader", topic: partition.topic, partition: partition.partition, position: 0))
        }
        var finished = false
        while !Task.isCancelled {
            let records: [ConsumerRecord]
            do {
                records = try await consumer.poll(timeout: .milliseconds(100))
            } catch {
                if Task.isCancelled { break }
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            for record in records {
                recorder.record(.recordRead(
                    reader: "reader", topic: record.topicPartition.topic, partition: record.topicPartition.partition,
                    offset: record.offset, record: record.recordId))
            }
            guard records.isEmpty, drain.isSet else { continue }
            if let positions = await caughtUp(consumer, partitions: partitions, client: client) {
                for (partition, position) in positions.sorted(by: { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }) {
                    recorder.record(.readerReachedEnd(
                        reader: "reader", topic: partition.topic, partition: partition.partition, position: position))
                }
                finished = true
                break
            }
            if ContinuousClock.now >= drainDeadline() { break }
        }
        if !finished {
            // What it did read still counts, up to where it got.
            for partition in partitions {
                if let position = await consumer.position(partition) {
                    recorder.record(.readerReachedEnd(
                        reader: "reader", topic: partition.topic, partition: partition.partition, position: position))
                }
            }
        }
        await consumer.close()
        return finished
    }
}
