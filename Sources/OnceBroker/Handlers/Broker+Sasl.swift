import KafkaProtocol
import NIOCore
import OnceCore
import OnceCrypto

/// SaslHandshake and SaslAuthenticate (KIP-152 framing) on SASL listeners: PLAIN checked against
/// the SCRAM credential store, SCRAM-SHA-256/512 through OnceCore's exchange. On other listeners,
/// and once authenticated, both answer ILLEGAL_SASL_STATE as Kafka's request handler does.
extension Broker {
    /// Before authentication a SASL listener serves only the SASL steps in order; Kafka closes the
    /// connection on anything else.
    func checkSaslGate(_ api: ApiKey, _ session: ConnectionSession) throws {
        guard session.securityProtocol.usesSASL else { return }
        let (allowed, handshaking) = session.sasl.withLock { state in
            if case .awaitingHandshake = state.phase { return (state.allows(api), true) }
            return (state.allows(api), false)
        }
        guard allowed else {
            let step = handshaking ? "handshake" : "authentication"
            throw ConnectionError(description: "Unexpected Kafka request of type \(api.name) during SASL \(step)")
        }
    }

    func saslHandshake(_ req: SaslHandshakeRequest, _ request: Request) -> SaslHandshakeResponse {
        var response = SaslHandshakeResponse()
        let enabled = config.sasl.enabledMechanisms
        let session = request.session
        guard session.securityProtocol.usesSASL else {
            response.errorCode = ErrorCode.illegalSaslState.rawValue
            return response
        }
        session.sasl.withLock { state in
            guard case .awaitingHandshake = state.phase else {
                response.errorCode = ErrorCode.illegalSaslState.rawValue
                return
            }
            response.mechanisms = enabled.map(\.rawValue)
            guard let mechanism = SaslMechanism(rawValue: req.mechanism), enabled.contains(mechanism) else {
                // Kafka answers, then closes the connection.
                response.errorCode = ErrorCode.unsupportedSaslMechanism.rawValue
                state.phase = .failed
                return
            }
            state.phase = .awaitingToken(mechanism)
            state.rawTokens = request.version == 0
        }
        if response.errorCode == ErrorCode.unsupportedSaslMechanism.rawValue {
            logger.info(
                "SASL mechanism refused",
                metadata: ["peer": "\(session.peerHost)", "mechanism": "\(req.mechanism)", "enabled": "\(response.mechanisms)"])
        }
        return response
    }

    private enum SaslStep {
        case reply([UInt8])
        case authenticated(user: String, reply: [UInt8])
        /// `message` goes to the client, `reason` to the log; neither holds a secret.
        case failed(message: String, reason: String, user: String?)
        /// Refused unchecked, the address having failed too often: not one more failure.
        case rateLimited
        case illegalState
    }

    /// After a v0 handshake the frame is the token itself and the answer a bare size-prefixed
    /// token; a failure closes the connection, as v0 has no way to say why. Nil when the frame is
    /// an ordinary request.
    func rawSaslToken(_ frame: ByteBuffer, session: ConnectionSession, eventLoop: any EventLoop) -> EventLoopFuture<OutboundResponse?>? {
        guard session.securityProtocol.usesSASL, session.sasl.withLock({ $0.expectsRawToken }) else { return nil }
        let token = Array(frame.readableBytesView)
        switch evaluate(token, session) {
        case .reply(let bytes), .authenticated(_, let bytes):
            var buffer = ByteBufferAllocator().buffer(capacity: 4 + bytes.count)
            buffer.writeInteger(Int32(bytes.count))
            buffer.writeBytes(bytes)
            return eventLoop.makeSucceededFuture(OutboundResponse(buffer))
        case .illegalState:
            return eventLoop.makeFailedFuture(ConnectionError(description: "SASL token out of turn"))
        case .failed, .rateLimited:
            let promise = eventLoop.makePromise(of: OutboundResponse?.self)
            runtime.schedule(afterMs: config.sasl.failedAuthenticationDelayMs, on: eventLoop) {
                promise.fail(ConnectionError(description: "SASL authentication failed"))
            }
            return promise.futureResult
        }
    }

    /// Runs one token through the connection's exchange and performs what follows from the
    /// outcome: the principal on success; the log line, failure count and metric on failure.
    private func evaluate(_ token: [UInt8], _ session: ConnectionSession) -> SaslStep {
        let now = clock()
        let step: SaslStep = session.sasl.withLock { state in
            guard session.securityProtocol.usesSASL, !state.isAuthenticated else { return .illegalState }
            if authenticationFailures.isLimited(session.peerHost, nowMs: now) {
                state.phase = .failed
                return .rateLimited
            }
            let step = authenticationStep(token, &state)
            switch step {
            case .authenticated: state.phase = .authenticated
            case .failed: state.phase = .failed
            case .reply, .illegalState, .rateLimited: break
            }
            return step
        }
        switch step {
        case .authenticated(let user, _):
            let principal = KafkaPrincipal(name: user)
            session.authenticate(as: principal)
            logger.debug("SASL authenticated", metadata: ["peer": "\(session.peerHost)", "principal": "\(principal)"])
        case .failed(_, let reason, let user):
            authenticationFailures.recordFailure(session.peerHost, nowMs: now)
            metrics.error(.saslAuthenticate, .saslAuthenticationFailed)
            logger.warning(
                "SASL authentication failed",
                metadata: ["peer": "\(session.peerHost)", "user": "\(user ?? "?")", "reason": "\(reason)"])
        case .rateLimited:
            metrics.error(.saslAuthenticate, .saslAuthenticationFailed)
            logger.warning("SASL authentication refused unchecked", metadata: ["peer": "\(session.peerHost)", "reason": "rate limited"])
        case .reply, .illegalState:
            break
        }
        return step
    }

    func saslAuthenticate(_ req: SaslAuthenticateRequest, _ request: Request) -> EventLoopFuture<SaslAuthenticateResponse> {
        var response = SaslAuthenticateResponse()
        response.errorMessage = nil
        let failure: String
        switch evaluate(req.authBytes, request.session) {
        case .illegalState:
            response.errorCode = ErrorCode.illegalSaslState.rawValue
            response.errorMessage = "SaslAuthenticate request received after successful authentication"
            return request.eventLoop.makeSucceededFuture(response)
        case .reply(let bytes), .authenticated(_, let bytes):
            response.authBytes = bytes
            return request.eventLoop.makeSucceededFuture(response)
        case .rateLimited:
            failure = "Authentication failed: too many failed authentications from this address, retry later"
        case .failed(let message, _, _):
            failure = message
        }
        response.errorCode = ErrorCode.saslAuthenticationFailed.rawValue
        response.errorMessage = failure
        // Answered now; the route delays the close (connection.failed.authentication.delay.ms).
        return request.eventLoop.makeSucceededFuture(response)
    }

    private func authenticationStep(_ token: [UInt8], _ state: inout SaslSessionState) -> SaslStep {
        switch state.phase {
        case .awaitingToken(.plain):
            return plainStep(token)
        case .awaitingToken(let mechanism):
            guard let scram = mechanism.scram else { preconditionFailure("PLAIN is handled above") }
            var exchange = ScramServerExchange(mechanism: scram, hashing: cryptography)
            let step = scramStep(token, &exchange)
            state.phase = .scram(exchange)
            return step
        case .scram(var exchange):
            let step = scramStep(token, &exchange)
            state.phase = .scram(exchange)
            return step
        case .awaitingHandshake, .authenticated, .failed:
            return .illegalState
        }
    }

    private func scramStep(_ token: [UInt8], _ exchange: inout ScramServerExchange) -> SaslStep {
        let mechanism = exchange.mechanism
        let action = exchange.received(token, serverNonce: LibCrypto.nonce()) { user in
            scramCredentials.credential(user: user, mechanism: mechanism)
        }
        switch action {
        case .challenge(let bytes): return .reply(bytes)
        case .authenticated(let user, let bytes): return .authenticated(user: user, reply: bytes)
        case .fail(let failure):
            let message =
                if case .authorizationIdMismatch = failure {
                    "Authentication failed: Client requested an authorization id that is different from username"
                } else {
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism \(mechanism.rawValue)"
                }
            return .failed(message: message, reason: failure.description, user: failure.user)
        }
    }

    private func plainStep(_ token: [UInt8]) -> SaslStep {
        let plain: PlainCredentials
        do {
            plain = try PlainCredentials(parsing: token)
        } catch {
            return .failed(message: "\(error)", reason: "\(error)", user: nil)
        }
        // Either stored mechanism proves the password; SHA-512 is tried first when a user has both.
        let stored = scramCredentials.credentials(user: plain.username)
        guard let (mechanism, credential) = [ScramMechanism.sha512, .sha256].lazy.compactMap({ m in stored[m].map { (m, $0) } }).first
        else {
            return .failed(
                message: "Authentication failed: Invalid username or password",
                reason: "no SCRAM credential for user '\(plain.username)'", user: plain.username)
        }
        guard ScramFormulas(mechanism, hashing: cryptography).verify(password: plain.password, against: credential) else {
            return .failed(
                message: "Authentication failed: Invalid username or password",
                reason: "wrong password for user '\(plain.username)'", user: plain.username)
        }
        return .authenticated(user: plain.username, reply: [])
    }
}
