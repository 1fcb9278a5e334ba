/// A parameter in PostgreSQL's binary wire form with its type oid. Arrays let one statement carry
/// every batch of a commit round, which is what keeps a produce request at one round trip.
struct PostgresValue {
    var oid: UInt32
    var bytes: [UInt8]

    private static let bool: UInt32 = 16, bytea: UInt32 = 17, int8: UInt32 = 20, int2: UInt32 = 21
    private static let int4: UInt32 = 23, text: UInt32 = 25

    static func int64(_ v: Int64) -> Self { .init(oid: int8, bytes: bigEndian(v)) }
    static func int32(_ v: Int32) -> Self { .init(oid: int4, bytes: bigEndian(v)) }
    static func string(_ v: String) -> Self { .init(oid: text, bytes: Array(v.utf8)) }
    static func data(_ v: [UInt8]) -> Self { .init(oid: bytea, bytes: v) }

    static func int64s(_ v: [Int64]) -> Self { array(of: int8, arrayOid: 1016, v.map(bigEndian)) }
    static func int32s(_ v: [Int32]) -> Self { array(of: int4, arrayOid: 1007, v.map(bigEndian)) }
    static func int16s(_ v: [Int16]) -> Self { array(of: int2, arrayOid: 1005, v.map(bigEndian)) }
    static func bools(_ v: [Bool]) -> Self { array(of: bool, arrayOid: 1000, v.map { [$0 ? 1 : 0] }) }
    static func strings(_ v: [String]) -> Self { array(of: text, arrayOid: 1009, v.map { Array($0.utf8) }) }
    static func datas(_ v: [[UInt8]]) -> Self { array(of: bytea, arrayOid: 1001, v) }

    /// A one-dimensional array without nulls: header (dimensions, null flag, element oid, length,
    /// lower bound), then each element as length and bytes.
    private static func array(of element: UInt32, arrayOid: UInt32, _ elements: [[UInt8]]) -> Self {
        var out: [UInt8] = []
        out.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + $1.count })
        out += bigEndian(Int32(1)) + bigEndian(Int32(0)) + bigEndian(element)
        out += bigEndian(Int32(elements.count)) + bigEndian(Int32(1))
        for e in elements {
            out += bigEndian(Int32(e.count))
            out += e
        }
        return .init(oid: arrayOid, bytes: out)
    }

    private static func bigEndian<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) }
    }
}
