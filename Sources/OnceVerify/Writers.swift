import OnceCheck
import OnceClient

/// A transactional producer writing unique record ids to random partitions of the input topic,
/// aborting some transactions on purpose and now and then handing its transactional id over to
/// a newer instance mid-transaction.
struct TransactionalWriter: Sendable {
    let label: String
    let transactionalId: String
    let topic: String
    let configuration: VerifyConfiguration
    let recorder: HistoryRecorder

    func run(until deadline: ContinuousClock.Instant) async {
        var session = TransactionalSession(
            transactionalId: transactionalId, label: label, configuration: configuration, recorder: recorder)
        var count = 0
        while ContinuousClock.now < deadline, !Task.isCancelled {
            guard await session.ensureInstance(until: deadline) else { break }
            let transaction: String
            do {
                transaction = try await session.begin()
            } catch {
                await session.abandon(after: error)
                continue
            }
            count += 1
            var failure: (any Error)?
            var lastPartition: Int32 = 0
            for n in 0..<Int.random(in: 1...configuration.maxTransactionSize) {
                lastPartition = Int32.random(in: 0..<configuration.partitions)
                do {
                    try await session.send(
                        "\(transaction).\(n)", in: transaction, topic: topic, partition: lastPartition, source: nil)
                } catch {
                    failure = error
                    break
                }
            }
            if let failure {
                await session.failed(transaction, failure)
                // While the cluster is down every send fails at once; do not spin through
                // empty transactions.
                try? await Task.sleep(for: .milliseconds(100))
            } else if configuration.fenceEvery > 0, count % configuration.fenceEvery == 0 {
                await session.handOver(transaction, topic: topic, partition: lastPartition, until: deadline)
            } else {
                await session.end(transaction, commit: Int.random(in: 0..<100) >= configuration.abortPercent)
            }
        }
        await session.close()
    }
}

/// An idempotent, non-transactional producer: its acknowledged writes must all be read once.
struct PlainWriter: Sendable {
    let topic: String
    let configuration: VerifyConfiguration
    let recorder: HistoryRecorder

    func run(until deadline: ContinuousClock.Instant) async {
        var producer: KafkaProducer?
        var next = 0
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if producer == nil {
                do {
                    producer = try await KafkaProducer.connect(
                        configuration: configuration.producerConfiguration(transactionalId: nil),
                        logger: configuration.logger("once.producer"))
                } catch {
                    configuration.log("plain writer: cannot start yet: \(error)")
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
            }
            do {
                for _ in 0..<5 {
                    next += 1
                    try await TransactionalSession.send(
                        "plain.\(next)", in: nil, topic: topic, partition: Int32.random(in: 0..<configuration.partitions),
                        source: nil, with: producer!, recorder: recorder)
                }
                await producer!.flush()
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                configuration.log("plain writer: \(error)")
                await producer!.close()
                producer = nil
            }
        }
        await producer?.close()
    }
}
