import KafkaProtocol

/// A transactional id as ListTransactions reports it.
public struct TransactionListing: Sendable, Hashable {
    public var transactionalId: String
    public var producerId: Int64
    public var state: String
}

/// A transaction as its coordinator describes it (KIP-664).
public struct TransactionDescription: Sendable, Hashable {
    public var transactionalId: String
    public var state: String
    public var producerId: Int64
    public var producerEpoch: Int16
    public var timeoutMs: Int32
    /// When the open transaction started, or -1.
    public var startTimeMs: Int64
    public var partitions: [TopicPartition]
}

extension KafkaClient {
    /// Every transactional id the cluster's coordinators know, optionally only those in `states`
    /// (Kafka's names: Empty, Ongoing, PrepareCommit, ...).
    public func listTransactions(states: [String] = []) async throws -> [TransactionListing] {
        var request = ListTransactionsRequest()
        request.stateFilters = states
        let response = try await liveBootstrap().send(request)
        if let error = KafkaError(errorCode: response.errorCode) { throw error }
        return response.transactionStates.map {
            TransactionListing(transactionalId: $0.transactionalId, producerId: $0.producerId, state: $0.transactionState)
        }.sorted { $0.transactionalId < $1.transactionalId }
    }

    public func describeTransaction(_ transactionalId: String) async throws -> TransactionDescription {
        var request = DescribeTransactionsRequest()
        request.transactionalIds = [transactionalId]
        let response = try await coordinator(for: transactionalId, type: .transaction).send(request)
        guard let state = response.transactionStates.first(where: { $0.transactionalId == transactionalId }) else {
            throw KafkaClientError(.unexpectedResponse, "DescribeTransactions response does not mention '\(transactionalId)'")
        }
        if let error = KafkaError(errorCode: state.errorCode, message: "transactional id '\(transactionalId)'") { throw error }
        return TransactionDescription(
            transactionalId: transactionalId, state: state.transactionState, producerId: state.producerId,
            producerEpoch: state.producerEpoch, timeoutMs: state.transactionTimeoutMs, startTimeMs: state.transactionStartTimeMs,
            partitions: state.topics.flatMap { t in t.partitions.map { TopicPartition(t.topic, $0) } })
    }

    /// Ends a hung transaction the safe way: an InitProducerId for its transactional id makes the
    /// coordinator abort the open transaction (markers written) and bump the epoch, fencing the stuck
    /// producer. Retries while the abort is in progress. Returns the epoch now current.
    public func abortTransaction(_ transactionalId: String, timeoutMs: Int32 = 60_000) async throws -> Int16 {
        let connection = try await coordinator(for: transactionalId, type: .transaction)
        var request = InitProducerIdRequest()
        request.transactionalId = transactionalId
        request.transactionTimeoutMs = timeoutMs
        for attempt in 0..<50 {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(100)) }
            let response = try await connection.send(request)
            guard let error = KafkaError(errorCode: response.errorCode) else { return response.producerEpoch }
            guard error.code == .concurrentTransactions || error.isRetriable else { throw error }
        }
        throw KafkaError(.concurrentTransactions, message: "transaction '\(transactionalId)' is still finishing")
    }
}
