// The protocol types OnceClient's own API speaks in, re-exported one by one so that
// `import OnceClient` is enough to build a header, pick a codec or match an error code, without
// also exposing every generated request type of KafkaProtocol.
@_exported import struct KafkaProtocol.RecordHeader
@_exported import enum KafkaProtocol.CompressionCodec
@_exported import struct KafkaProtocol.ErrorCode
@_exported import struct KafkaProtocol.KafkaUUID
@_exported import struct NIOCore.ByteBuffer
