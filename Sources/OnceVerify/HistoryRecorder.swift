import OnceCheck
import Synchronization

/// The history of one run, appended to by every task of the workload. The order of appends is
/// the order the checker reasons about, so each task records an event only once it happened.
final class HistoryRecorder: Sendable {
    private let events = Mutex<[HistoryEvent]>([])

    func record(_ event: HistoryEvent) {
        events.withLock { $0.append(event) }
    }

    var history: [HistoryEvent] { events.withLock { $0 } }
}
