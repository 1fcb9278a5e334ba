extension KafkaProducer {
    /// The producer id and epoch the broker last gave this producer; (-1, -1) for a plain
    /// producer. Tools that record histories (`once verify`) need it to tell two instances of
    /// one transactional id apart and to check that epochs only grow.
    public var identity: (producerId: Int64, epoch: Int16) { (producerId, producerEpoch) }
}
