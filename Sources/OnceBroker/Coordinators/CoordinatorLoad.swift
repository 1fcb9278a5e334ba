import KafkaProtocol
import Synchronization

/// Whether a coordinator may answer from its state. In a cluster the state belongs to whoever leads
/// the internal partition, so it is loaded when leadership arrives and dropped when it leaves; a
/// request meanwhile is told COORDINATOR_LOAD_IN_PROGRESS (as Kafka's coordinators answer while
/// they replay their partition), and the client retries the same broker instead of acting on
/// nothing.
final class CoordinatorLoad: Sendable {
    enum Phase: Sendable { case loading, serving, idle }

    private let phase: Mutex<Phase>

    init(serving: Bool) { phase = Mutex(serving ? .serving : .idle) }

    var current: Phase { phase.withLock { $0 } }
    var serving: Bool { current == .serving }

    func set(_ next: Phase) { phase.withLock { $0 = next } }

    /// COORDINATOR_LOAD_IN_PROGRESS while this broker loads the state, nil otherwise (the
    /// placement then decides between serving and NOT_COORDINATOR).
    var refusal: ErrorCode? { current == .loading ? .coordinatorLoadInProgress : nil }
}
