import ServiceLifecycle

/// Runs until the service group shuts down, then flushes buffered records and closes, so a
/// SIGTERM never drops what `send`/`enqueue` already accepted. A producer made with `init`
/// starts obtaining its producer id here rather than at construction, and reconnects on demand
/// for as long as it runs.
extension KafkaProducer: Service {
    public func run() async throws {
        startProducerIdInit()
        try? await gracefulShutdown()
        await close()
    }
}

/// Runs until the service group shuts down, then leaves the group (committing with
/// auto-commit) and closes; the `records` sequence ends.
extension KafkaConsumer: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
