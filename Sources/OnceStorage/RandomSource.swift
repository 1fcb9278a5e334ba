import KafkaProtocol
import Synchronization

/// The one place the broker and its storage draw random numbers (topic ids, member ids): the
/// system generator in production, a seeded one under simulation, so a simulated run depends on
/// its seed alone.
public final class RandomSource: Sendable {
    private let generator: Mutex<any RandomNumberGenerator & Sendable>

    public init(_ generator: some RandomNumberGenerator & Sendable) {
        self.generator = Mutex(generator)
    }

    public static let system = RandomSource(SystemRandomNumberGenerator())

    public func next() -> UInt64 {
        generator.withLock { $0.next() }
    }

    public func uuid() -> KafkaUUID {
        KafkaUUID(high: next(), low: next())
    }

    public func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}
