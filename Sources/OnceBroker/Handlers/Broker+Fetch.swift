import KafkaProtocol
import NIOCore
import OnceStorage

/// Fetch: whole stored batches from each partition, up to the high watermark (read_uncommitted) or
/// the last stable offset (read_committed), long-polling until `minBytes` arrive or `maxWaitMs` passes.
/// Fetch sessions (KIP-227) are declined by answering session id 0, which makes clients send full
/// requests, as Kafka allows.
extension Broker {
    /// Record sets stay in their segment files and go out with sendfile; engines without files
    /// answer from memory.
    func fetchStreaming(_ req: FetchRequest, _ request: Request) -> EventLoopFuture<OutboundResponse?> {
        fetch(req, request).map { round in
            var response = round.response
            for placeholder in round.placeholders {
                // Markers sit where the record sets go; `splice` swaps them for the file ranges.
                let key = placeholder.key
                response.responses[key.topic].partitions[key.partition].records = placeholder.marker.marker
            }
            let encoded = self.encodeBuffer(response, for: request)
            let spliced = OutboundResponse.splice(encoded, round.placeholders.map(\.marker), compact: request.version >= 12)
            self.metrics.responseSent(.fetch, bytes: spliced.byteCount - encoded.readableBytes)
            return spliced
        }
    }

    private func fetch(_ req: FetchRequest, _ request: Request) -> EventLoopFuture<FetchRound> {
        if request.version >= 7 && req.sessionId != 0 {
            var round = FetchRound()
            round.response.errorCode = ErrorCode.fetchSessionIdNotFound.rawValue
            return request.eventLoop.makeSucceededFuture(round)
        }
        let waitMs = Int64(max(0, min(req.maxWaitMs, config.maxFetchWaitMs)))
        // Decided once per request, not per round or batch: Topic READ for each topic.
        let auth = authorization(request)
        let refused = Set(req.topics.map(\.topic).filter { !auth.allowsTopic(.read, $0) })
        // The runtime's clock, which its timer below counts in too (simulated time under simulation).
        return fetchRound(req, request, refused: refused, deadlineMs: clock() + Int64(waitMs))
    }

    private func fetchRound(
        _ req: FetchRequest, _ request: Request, refused: Set<String>, deadlineMs: Int64
    ) -> EventLoopFuture<FetchRound> {
        readFetch(req, refused: refused, on: request.eventLoop).flatMap { round in
            self.answerOrPark(round, req, request, refused: refused, deadlineMs: deadlineMs)
        }
    }

    /// An engine whose reads may wait (the postgres engine's, from the database) reads on the
    /// runtime's I/O threads, so the event loop keeps serving its other connections (a slow read of one
    /// partition never stalls a Produce on another). The engines that read from memory or a file's
    /// page cache read in place, as a hop would cost more than the read.
    private func readFetch(_ req: FetchRequest, refused: Set<String>, on eventLoop: any EventLoop) -> EventLoopFuture<FetchRound> {
        guard storage.readsMayWait else { return eventLoop.makeSucceededFuture(readFetch(req, refused: refused)) }
        let promise = eventLoop.makePromise(of: FetchRound.self)
        runtime.io.submit { promise.succeed(self.readFetch(req, refused: refused)) }
        return promise.futureResult
    }

    private func answerOrPark(
        _ round: FetchRound, _ req: FetchRequest, _ request: Request, refused: Set<String>, deadlineMs: Int64
    ) -> EventLoopFuture<FetchRound> {
        if round.bytes >= Int(req.minBytes) || round.failed || clock() >= deadlineMs {
            metrics.recordBytesFetched(round.bytes)
            for (topic, bytes) in round.bytesByTopic { metrics.topicFetched(topic, bytes: bytes) }
            return request.eventLoop.makeSucceededFuture(round)
        }
        let promise = request.eventLoop.makePromise(of: Void.self)
        let id = waiters.register(Array(round.endOffsets.keys), promise: promise)
        // Data appended between the read and the registration would not wake us: check once more.
        for (key, end) in round.endOffsets where storage.partition(topic: key.topic, partition: key.partition)?.highWatermark != end {
            waiters.complete(id)
            break
        }
        let timer = runtime.schedule(afterMs: deadlineMs - clock(), on: request.eventLoop) { self.waiters.complete(id) }
        return promise.futureResult.flatMap {
            timer.cancel()
            return self.fetchRound(req, request, refused: refused, deadlineMs: deadlineMs)
        }
    }

    private struct FetchRound {
        var response = FetchResponse()
        var bytes = 0
        var failed = false
        var bytesByTopic: [String: Int] = [:]
        /// High watermarks seen by this round, to notice appends (and syncs) while parked.
        var endOffsets: [FetchWaiters.PartitionKey: Int64] = [:]
        /// Record sets left in their files, by position in `response`.
        var placeholders: [FilePlaceholder] = []
    }

    private struct FilePlaceholder {
        var key: (topic: Int, partition: Int)
        var marker: OutboundResponse.Placeholder
    }

    private func readFetch(_ req: FetchRequest, refused: Set<String>) -> FetchRound {
        var placeholders: [FilePlaceholder] = []
        var bytes = 0
        var failed = false
        var endOffsets: [FetchWaiters.PartitionKey: Int64] = [:]
        var bytesByTopic: [String: Int] = [:]
        let readCommitted = req.isolationLevel == 1
        // The broker's fetch.max.bytes bounds what one response may hold, whatever the client asks.
        var remaining = min(Int(req.maxBytes), config.fetchMaxBytes)
        let responses = req.topics.enumerated().map { topicIndex, t in
            var topic = FetchResponse.FetchableTopicResponse()
            topic.topic = t.topic
            topic.partitions = t.partitions.enumerated().map { partitionIndex, p in
                var result = FetchResponse.PartitionData()
                result.partitionIndex = p.partition
                // Empty, not null: librdkafka cannot parse a null record set, even beside an error.
                result.records = ByteBuffer()
                guard !refused.contains(t.topic) else {
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    result.highWatermark = -1
                    failed = true
                    metrics.error(.fetch, .topicAuthorizationFailed)
                    return result
                }
                guard let log = storage.partition(topic: t.topic, partition: p.partition) else {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    result.highWatermark = -1
                    failed = true
                    metrics.error(.fetch, .unknownTopicOrPartition)
                    return result
                }
                if let code = leadershipRefusal(t.topic, p.partition, currentLeaderEpoch: p.currentLeaderEpoch) {
                    result.errorCode = code.rawValue
                    result.highWatermark = -1
                    failed = true
                    metrics.error(.fetch, code)
                    return result
                }
                // Under `--flush always` the high watermark is the durable end: a power cut cannot
                // take back what a consumer read.
                let end = log.highWatermark
                endOffsets[.init(topic: t.topic, partition: p.partition)] = end
                result.highWatermark = end
                result.logStartOffset = log.logStartOffset
                do {
                    let view = try stableView(t.topic, p.partition, from: p.fetchOffset)
                    let stable = min(view.lastStableOffset, end)
                    let aborted = view.aborted
                    result.lastStableOffset = stable
                    result.abortedTransactions = readCommitted
                        ? aborted.map {
                            var a = FetchResponse.AbortedTransaction()
                            a.producerId = $0.producerId
                            a.firstOffset = $0.firstOffset
                            return a
                        } : nil
                    guard remaining > 0 || bytes == 0 else { return result }
                    let limit = readCommitted ? stable : end
                    let maxBytes = max(1, min(Int(p.partitionMaxBytes), remaining))
                    // Only the first partition with data may exceed the limits (so a consumer always
                    // progresses); later ones stop at what still fits.
                    if let stored = try log.locate(from: p.fetchOffset, maxBytes: maxBytes, limitOffset: limit) {
                        if stored.length > 0 && (bytes == 0 || stored.length <= remaining) {
                            placeholders.append(
                                FilePlaceholder(
                                    key: (topicIndex, partitionIndex),
                                    marker: .init(marker: OutboundResponse.makeMarker(), records: stored)))
                            bytes += stored.length
                            remaining -= stored.length
                            bytesByTopic[t.topic, default: 0] += stored.length
                        }
                        return result
                    }
                    let records = try log.read(from: p.fetchOffset, maxBytes: maxBytes, limitOffset: limit)
                    if bytes == 0 || records.readableBytes <= remaining {
                        result.records = records
                        bytes += records.readableBytes
                        remaining -= records.readableBytes
                        bytesByTopic[t.topic, default: 0] += records.readableBytes
                    }
                } catch {
                    let (code, _) = errorCode(for: error)
                    result.errorCode = code.rawValue
                    failed = true
                    metrics.error(.fetch, code)
                }
                return result
            }
            return topic
        }
        var round = FetchRound(
            bytes: bytes, failed: failed, bytesByTopic: bytesByTopic, endOffsets: endOffsets, placeholders: placeholders)
        round.response.responses = responses
        return round
    }
}
