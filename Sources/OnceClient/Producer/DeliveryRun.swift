extension KafkaProducer {
    /// Who hears about a record: its own handler, or a bulk call's handler with the record's
    /// index in that call.
    enum Delivery {
        case single(DeliveryHandler)
        case indexed(IndexedDeliveryHandler, call: Int, index: Int)
    }

    /// Consecutive records of a batch that share a handler. A bulk `enqueue` thus stores one
    /// entry per batch rather than a closure per record, which at a million records a second is
    /// a large share of the producer's work.
    struct DeliveryRun {
        var first: Delivery
        var count: Int

        /// Extends the run when `next` is the following record of the same bulk call.
        mutating func absorb(_ next: Delivery) -> Bool {
            guard case .indexed(_, let call, let index) = first, case .indexed(_, let nextCall, let nextIndex) = next,
                call == nextCall, index + count == nextIndex
            else { return false }
            count += 1
            return true
        }

        func deliver(startingAt record: Int, _ result: (Int) -> Result<RecordMetadata, any Error>) {
            switch first {
            case .single(let handler):
                handler(result(record))
            case .indexed(let handler, _, let index):
                for i in 0..<count { handler(index + i, result(record + i)) }
            }
        }
    }
}
