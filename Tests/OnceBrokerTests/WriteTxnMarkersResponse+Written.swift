import KafkaProtocol

extension WriteTxnMarkersResponse {
    /// The answer of a leader that wrote every marker of `request`: what a fake peer (or the
    /// simulator's marker-claiming defect) gives back.
    static func allWritten(_ request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
        var response = WriteTxnMarkersResponse()
        response.markers = request.markers.map { marker in
            var result = WriteTxnMarkersResponse.WritableTxnMarkerResult()
            result.producerId = marker.producerId
            result.topics = marker.topics.map { t in
                var topic = WriteTxnMarkersResponse.WritableTxnMarkerTopicResult()
                topic.name = t.name
                topic.partitions = t.partitionIndexes.map { p in
                    var partition = WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult()
                    partition.partitionIndex = p
                    partition.errorCode = ErrorCode.none.rawValue
                    return partition
                }
                return topic
            }
            return result
        }
        return response
    }
}
