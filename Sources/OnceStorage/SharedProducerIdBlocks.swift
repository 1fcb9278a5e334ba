/// Storage that several brokers share (the postgres engine). Each broker's producer-id allocator
/// takes its blocks from here, reserved atomically, as Kafka's controller grants blocks through
/// AllocateProducerIds: a reservation read at start and written back later would let two brokers
/// hand out the same ids, and two producers sharing an id corrupt each other's sequences.
public protocol SharedProducerIdBlocks: Sendable {
    /// Reserves `size` ids no broker of the cluster was or will be given and returns the first.
    func reserveProducerIdBlock(size: Int64) throws -> Int64
}
