import OnceCheck
import OnceClient
import Synchronization

/// What one `once verify` run did and what the checker made of it.
public struct VerifyResult: Sendable {
    public var inputTopic: String
    public var outputTopic: String
    public var history: [HistoryEvent]
    public var report: CheckReport
    public var faults: Int
    /// False when the processor or the reader could not catch up within the drain timeout:
    /// the checks then cover only what they got through, and the run counts as failed.
    public var drained: Bool
}

/// The workload: writers, a plain writer, a processor and a reader against a fresh pair of
/// topics, optionally disturbed by a fault command, then drained and checked.
public enum VerifyRun {
    public struct SetupFailed: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(_ configuration: VerifyConfiguration) async throws -> VerifyResult {
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let inputTopic = "verify-\(run)-in"
        let outputTopic = "verify-\(run)-out"
        let group = "verify-\(run)-group"
        let client = try await KafkaClient.connect(
            bootstrapServers: configuration.bootstrapServers, configuration: configuration.clientConfiguration)
        for topic in [inputTopic, outputTopic] {
            do {
                try await client.createTopic(
                    topic, partitions: configuration.partitions, replicationFactor: configuration.replicationFactor)
            } catch {
                await client.close()
                throw SetupFailed(description: "cannot create topic \(topic): \(error)")
            }
        }
        configuration.log("topics \(inputTopic), \(outputTopic); group \(group)")

        let recorder = HistoryRecorder()
        let writersDone = Flag()
        let processorDone = Flag()
        let drainDeadline = Mutex(ContinuousClock.now + configuration.duration + configuration.drainTimeout)
        let deadline = ContinuousClock.now + configuration.duration

        let reader = Reader(
            topics: [inputTopic, outputTopic], configuration: configuration, recorder: recorder, client: client)
        let processor = Processor(
            inputTopic: inputTopic, outputTopic: outputTopic, group: group, transactionalId: "verify-\(run)-proc",
            configuration: configuration, recorder: recorder, client: client)
        let readerTask = Task { await reader.run(drain: processorDone, drainDeadline: { drainDeadline.withLock { $0 } }) }
        let processorTask = Task { await processor.run(writersDone: writersDone) }
        let faultTask = Task {
            guard let command = configuration.faultCommand else { return 0 }
            return await FaultInjector(command: command, interval: configuration.faultInterval, log: configuration.log)
                .run(until: deadline)
        }
        await withTaskGroup(of: Void.self) { group in
            for n in 1...configuration.writers {
                let writer = TransactionalWriter(
                    label: "w\(n)", transactionalId: "verify-\(run)-w\(n)", topic: inputTopic,
                    configuration: configuration, recorder: recorder)
                group.addTask { await writer.run(until: deadline) }
            }
            group.addTask {
                await PlainWriter(topic: inputTopic, configuration: configuration, recorder: recorder).run(until: deadline)
            }
        }
        let faults = await faultTask.value
        writersDone.set()
        let drainEnd = ContinuousClock.now + configuration.drainTimeout
        drainDeadline.withLock { $0 = drainEnd }
        configuration.log("writers stopped; draining")
        let processorWatchdog = Task {
            guard (try? await Task.sleep(until: drainEnd, clock: .continuous)) != nil else { return }
            processorTask.cancel()
        }
        let processed = await processorTask.value
        processorWatchdog.cancel()
        // The reader's own window starts once the processor has written its last output.
        drainDeadline.withLock { $0 = ContinuousClock.now + configuration.drainTimeout }
        processorDone.set()
        let drained = await readerTask.value && processed

        for _ in 0..<20 {
            guard let committed = try? await client.committedOffsets(group: group) else {
                try? await Task.sleep(for: .milliseconds(250))
                continue
            }
            for (partition, offset) in committed.sorted(by: { $0.key.partition < $1.key.partition })
            where partition.topic == inputTopic {
                recorder.record(.committedOffsetObserved(
                    group: group, topic: partition.topic, partition: partition.partition, offset: offset))
            }
            break
        }
        await client.close()
        let history = recorder.history
        return VerifyResult(
            inputTopic: inputTopic, outputTopic: outputTopic, history: history, report: HistoryChecker.check(history),
            faults: faults, drained: drained)
    }
}
