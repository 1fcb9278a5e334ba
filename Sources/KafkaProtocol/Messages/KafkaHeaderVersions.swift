/// Which header version frames a request or response body.
///
/// A flexible body travels with a flexible header (request header v2, response header v1), except
/// that the ApiVersions response always uses response header v0: a client that does not yet know
/// which versions the broker speaks must still be able to read the correlation id.
public enum KafkaHeaderVersions {
    /// The request header version for a request of `apiKey` at `apiVersion`. An api key this codec
    /// does not implement gets v1, which still yields the correlation id needed to answer it.
    public static func request(apiKey: Int16, apiVersion: Int16) -> Int16 {
        isFlexible(apiKey: apiKey, apiVersion: apiVersion) ? 2 : 1
    }

    /// The response header version for a response of `apiKey` at `apiVersion`.
    public static func response(apiKey: Int16, apiVersion: Int16) -> Int16 {
        if apiKey == ApiKey.apiVersions.rawValue { return 0 }
        return isFlexible(apiKey: apiKey, apiVersion: apiVersion) ? 1 : 0
    }

    static func isFlexible(apiKey: Int16, apiVersion: Int16) -> Bool {
        guard let first = ApiKey(rawValue: apiKey)?.firstFlexibleVersion else { return false }
        return apiVersion >= first
    }
}
