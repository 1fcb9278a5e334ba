import OnceClient
import Testing

@Suite struct PartitionerTests {
    /// Values from the Java client's own murmur2 unit test and librdkafka's, so a mismatch means
    /// keyed records would land on different partitions than other clients put them.
    @Test(arguments: [
        ("21", Int32(-973_932_308)),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
        ("1", -1_993_445_489),
        ("12", 126_087_238),
        ("123", -267_702_483),
        ("1234", -1_614_185_708),
        ("12345", -1_188_365_604),
    ])
    func murmur2MatchesTheJavaClient(key: String, expected: Int32) {
        #expect(Partitioner.murmur2(Array(key.utf8)) == expected)
    }

    @Test func murmur2OfNothingIsStable() {
        #expect(Partitioner.murmur2([UInt8]()) == Partitioner.murmur2(Array("".utf8)))
    }

    @Test func partitionClearsTheSignBitBeforeTheModulo() {
        // murmur2("21") is negative: Java's toPositive masks it to 1173551340, and 1173551340 % 7 == 3.
        #expect(Partitioner.partition(forKey: Array("21".utf8), partitionCount: 7) == 3)
        #expect(Partitioner.partition(forKey: Array("abc".utf8), partitionCount: 10) == 7)
    }

    @Test func everyPartitionIsInRange() {
        for i in 0..<500 {
            let p = Partitioner.partition(forKey: Array("key-\(i)".utf8), partitionCount: 6)
            #expect((0..<6).contains(p))
        }
    }
}
