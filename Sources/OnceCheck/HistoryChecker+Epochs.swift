extension HistoryChecker {
    /// Per transactional id and producer id, each InitProducerId answers a higher epoch than the
    /// last. A new producer id (after epoch exhaustion) starts its own sequence.
    static func checkEpochs(_ index: HistoryIndex, _ report: inout CheckReport) {
        var last: [String: (producerId: Int64, epoch: Int16)] = [:]
        for initialization in index.initializations {
            if let previous = last[initialization.transactionalId], previous.producerId == initialization.producerId,
                initialization.epoch <= previous.epoch
            {
                report.add(
                    .epochRegression,
                    "\(initialization.transactionalId) got epoch \(initialization.epoch) (producer id \(initialization.producerId)) for \(initialization.instance) after epoch \(previous.epoch)")
            }
            last[initialization.transactionalId] = (initialization.producerId, initialization.epoch)
        }
    }

    /// A record acknowledged under an epoch lower than one InitProducerId had already returned
    /// to another instance of the same transactional id, or to an instance already told it is
    /// fenced.
    static func checkFencedAppends(_ index: HistoryIndex, _ report: inout CheckReport) {
        for id in index.recordOrder {
            guard let record = index.records[id], let ackedAt = record.ackedAt, let transactionId = record.transaction,
                let transaction = index.transactions[transactionId]
            else { continue }
            if let newer = index.initializationsById[transaction.transactionalId]?.first(where: {
                $0.at < ackedAt && $0.instance != transaction.instance && $0.producerId == transaction.producerId
                    && $0.epoch > transaction.epoch
            }) {
                report.add(
                    .fencedAppend,
                    "record \(id) of \(transaction.instance) (epoch \(transaction.epoch)) was acknowledged after \(newer.instance) got epoch \(newer.epoch) for \(transaction.transactionalId)")
            } else if index.fencesById[transaction.transactionalId]?.contains(where: {
                $0.at < ackedAt && $0.instance == transaction.instance
            }) == true {
                report.add(
                    .fencedAppend,
                    "record \(id) of \(transaction.instance) was acknowledged after that instance was fenced")
            }
        }
    }
}
