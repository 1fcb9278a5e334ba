import NIOCore

/// Arrays of any element, so generated code reads and writes an array in one call. The element
/// closures are generic, not existential, and inline away in optimised builds.
extension ByteBuffer {
    /// Reads a nullable array (classic int32 count, or compact varint count plus one); nil for null.
    @inlinable
    public mutating func readKafkaNullableArray<Element>(
        compact: Bool,
        _ element: (inout ByteBuffer) throws -> Element
    ) throws -> [Element]? {
        guard let count = try readKafkaArrayCount(compact: compact) else { return nil }
        var result: [Element] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            result.append(try element(&self))
        }
        return result
    }

    /// Reads an array that the schema does not allow to be null in this version.
    @inlinable
    public mutating func readKafkaArray<Element>(
        compact: Bool,
        _ element: (inout ByteBuffer) throws -> Element
    ) throws -> [Element] {
        guard let result = try readKafkaNullableArray(compact: compact, element) else {
            throw KafkaProtocolError.invalid("null array in a non-nullable field")
        }
        return result
    }

    /// Writes an array, or the null marker for nil.
    @inlinable
    public mutating func writeKafkaArray<Element>(
        _ array: [Element]?,
        compact: Bool,
        _ element: (Element, inout ByteBuffer) -> Void
    ) {
        guard let array else {
            writeKafkaArrayCount(nil, compact: compact)
            return
        }
        writeKafkaArrayCount(array.count, compact: compact)
        for value in array {
            element(value, &self)
        }
    }
}
