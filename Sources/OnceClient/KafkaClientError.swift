import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure on the client side of the wire: the broker could not be reached, went away, or
/// sent something this client cannot use. Errors the broker reports are `KafkaError`s instead.
public struct KafkaClientError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case cannotConnect
        case connectionClosed
        case requestTimedOut
        case unsupportedApi
        case malformedResponse
        case unknownBroker
        case unexpectedResponse
        case unsupportedFeature
        /// The TLS handshake failed or TLS material could not be loaded: an untrusted or
        /// expired certificate, a missing client certificate, a port that does not speak TLS.
        case tlsFailed
        /// SASL failed: the broker refused the mechanism or the credentials, or (SCRAM) could not
        /// prove it knows them. Retrying with the same settings fails the same way.
        case authenticationFailed
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func cannotConnect(host: String, port: Int, reason: String) -> KafkaClientError {
        KafkaClientError(.cannotConnect, "cannot connect to \(host):\(port): \(reason)")
    }

    static func connectionClosed(_ endpoint: String) -> KafkaClientError {
        KafkaClientError(.connectionClosed, "connection to \(endpoint) closed")
    }

    static func requestTimedOut(_ endpoint: String, apiKey: Int16, after timeout: TimeAmount) -> KafkaClientError {
        let millis = timeout.nanoseconds / 1_000_000
        return KafkaClientError(
            .requestTimedOut, "request (api key \(apiKey)) to \(endpoint) timed out after \(millis) ms")
    }

    /// Turns what NIO reports for a failed connect into the short reason a person expects to
    /// read, e.g. "connection refused".
    static func connectFailureReason(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                return "cannot resolve host (\(dns))"
            }
            if let first = error.connectionErrors.first {
                return connectFailureReason(first.error)
            }
            return "no address to connect to"
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "connection timed out"
            case EHOSTUNREACH: return "no route to host"
            case ENETUNREACH: return "network is unreachable"
            default: return "\(error)"
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return "connection timed out"
        }
        return "\(error)"
    }
}
