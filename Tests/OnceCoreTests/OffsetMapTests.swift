import Testing

@testable import OnceCore

/// The cleaner's bounded map from key digest to latest offset.
@Suite("OffsetMap")
struct OffsetMapTests {
    static func key(_ i: Int) -> OffsetMap.Digest { OffsetMap.Digest(Array("key-\(i)".utf8)) }

    @Test(arguments: [OffsetMap.minimumBytes, 100, 1000, 4096, 1 << 16])
    func theMapNeverExceedsItsBoundAndRefusesNewKeysWhenFull(maxBytes: Int) {
        var map = OffsetMap(maxBytes: maxBytes)
        #expect(map.bytes <= maxBytes)
        var taken = 0
        for i in 0..<10_000 {
            if map.put(Self.key(i), offset: Int64(i)) { taken += 1 } else { break }
        }
        #expect(taken == map.capacity)
        #expect(taken >= 1)
        #expect(taken * OffsetMap.bytesPerEntry <= maxBytes)
        #expect(map.bytes <= maxBytes)
        #expect(map.count == taken)
        // Full: a new key is refused and leaves the map as it was, a known key still moves on.
        let refused = map.put(Self.key(taken), offset: 20_000)
        #expect(!refused)
        #expect(map.offset(of: Self.key(taken)) == nil)
        let moved = map.put(Self.key(0), offset: 30_000)
        #expect(moved)
        #expect(map.count == taken)
        #expect(map.bytes <= maxBytes)
        #expect(map.offset(of: Self.key(0)) == 30_000)
        for i in 1..<taken { #expect(map.offset(of: Self.key(i)) == Int64(i)) }
        #expect(map.latestOffset == 30_000)
    }

    @Test func aSmallSectionDoesNotAllocateTheWholeBound() {
        let map = OffsetMap(maxBytes: 128 << 20, expectedKeys: 10)
        #expect(map.capacity >= 10)
        #expect(map.bytes < 1024)
    }

    @Test func digestsTellKeysApartAndAgreeOnEqualKeys() {
        let digests = Set((0..<50_000).map(Self.key))
        #expect(digests.count == 50_000)
        #expect(OffsetMap.Digest(Array("same".utf8)) == OffsetMap.Digest(Array("same".utf8)))
        #expect(OffsetMap.Digest([]) != OffsetMap.Digest([0]))
    }
}
