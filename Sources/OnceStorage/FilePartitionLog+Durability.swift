import Logging

extension FilePartitionLog {
    /// Under `.always`, parks the caller until a sync covers `offset`. Syncs are shared: while one
    /// runs, newcomers queue for the next, which covers everything appended before it starts, so
    /// any number of concurrent producers costs about two fsyncs of latency and one per round.
    /// The fsync runs on the engine's blocking-I/O threads, which only resume the continuation:
    /// the waiting task carries on on its own executor (the broker runtime's), not on that thread.
    func waitDurable(upTo offset: Int64) async throws {
        guard runtime.flushPolicy.acknowledgesOnlyDurableWrites else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enum Next {
                case done
                case failed(any Error)
                case queued
                case startSync
            }
            let next: Next = state.withLock { s in
                if s.isDeleted { return .failed(StorageError.unknownTopic(topic)) }
                // Nothing beyond the log end can become durable; waiting for it would never end.
                let goal = min(offset, s.logEndOffset)
                if s.durableOffset >= goal { return .done }
                if !s.isOpen { return .failed(StorageError.io("partition \(topic)-\(partition) is closed")) }
                s.waiters.append(Waiter(offset: goal, continuation: continuation))
                if s.syncInFlight { return .queued }
                s.syncInFlight = true
                return .startSync
            }
            switch next {
            case .done: continuation.resume()
            case .failed(let error): continuation.resume(throwing: error)
            case .queued: break
            case .startSync: runtime.background { self.groupCommit() }
            }
        }
    }

    /// Syncs rounds until no waiter is left. Runs on the blocking-I/O threads.
    private func groupCommit() {
        while true {
            let result = syncOnce()
            let (ready, more): ([Waiter], Bool) = state.withLock { s in
                var ready: [Waiter] = []
                var remaining: [Waiter] = []
                for waiter in s.waiters {
                    if case .failure = result {
                        ready.append(waiter)
                    } else if waiter.offset <= s.durableOffset {
                        ready.append(waiter)
                    } else {
                        remaining.append(waiter)
                    }
                }
                s.waiters = remaining
                if remaining.isEmpty { s.syncInFlight = false }
                return (ready, !remaining.isEmpty)
            }
            for waiter in ready {
                switch result {
                case .success: waiter.continuation.resume()
                case .failure(let error): waiter.continuation.resume(throwing: error)
                }
            }
            if !more { return }
        }
    }

    func sync() throws {
        if case .failure(let error) = syncOnce() { throw error }
    }

    /// fsyncs every log with unsynced appends and advances the durable offset to the log end seen
    /// when the sync started.
    @discardableResult
    func syncOnce() -> Result<Int64, StorageError> {
        syncLock.withLock { _ in
            let (logs, target) = state.withLock { s in
                let logs = s.unsynced
                s.unsynced = []
                return (logs, s.logEndOffset)
            }
            for (i, log) in logs.enumerated() {
                do {
                    try log.sync()
                } catch {
                    // Hand the rest back so a later sync (or close) tries them again.
                    state.withLock { s in s.unsynced.insert(contentsOf: logs[i...], at: 0) }
                    runtime.logger.error("fsync failed", metadata: ["file": "\(log.path)", "error": "\(error)"])
                    return .failure(error as? StorageError ?? .io("\(error)"))
                }
            }
            return .success(
                state.withLock { s in
                    if !logs.isEmpty { s.syncRounds += 1 }
                    s.durableOffset = max(s.durableOffset, target)
                    return s.durableOffset
                })
        }
    }

    /// Stops appends, syncs, writes the active segment's indexes and releases the files. Readers
    /// still holding a segment keep their descriptor until they finish.
    func close() throws {
        let wasOpen = state.withLock { s in
            defer { s.isOpen = false }
            return s.isOpen
        }
        guard wasOpen else { return }
        let synced = syncOnce()
        let (active, waiters, durable): (FileSegment?, [Waiter], Int64) = state.withLock { s in
            let active = s.segments.last
            let waiters = s.waiters
            s.waiters = []
            let closing = s.segments
            s.segments = []
            s.unsynced = []
            for segment in closing where segment.baseOffset != active?.baseOffset { segment.log.release() }
            return (active, waiters, s.durableOffset)
        }
        for waiter in waiters {
            if waiter.offset <= durable {
                waiter.continuation.resume()
            } else {
                waiter.continuation.resume(throwing: StorageError.io("partition \(topic)-\(partition) closed before sync"))
            }
        }
        if let active {
            do {
                try active.writeIndexes()
            } catch {
                runtime.logger.warning("could not write segment indexes", metadata: ["segment": "\(active.log.path)", "error": "\(error)"])
            }
            active.log.release()
        }
        if case .failure(let error) = synced { throw error }
    }

    /// The topic is gone: fail everyone still waiting and drop the files' descriptors.
    func markDeleted() {
        let waiters: [Waiter] = state.withLock { s in
            s.isDeleted = true
            s.isOpen = false
            for segment in s.segments { segment.log.release() }
            s.segments = []
            s.unsynced = []
            let waiters = s.waiters
            s.waiters = []
            return waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: StorageError.unknownTopic(topic)) }
    }
}
