package dev.mtlsproxy.config;

import java.time.Duration;

/**
 * One public mTLS listener.
 *
 * @param name             label used in logs and metrics; defaults to {@code "main"}
 * @param address          where to bind, {@code host:port}; port 0 binds an ephemeral port (tests)
 * @param tls              server certificate and the CAs that client certificates must chain to
 * @param limits           HTTP parser limits; a request over a limit gets 414 (request line) or 431 (headers)
 *                         and is never forwarded
 * @param idleTimeout      a connection with no traffic for this long is closed
 * @param handshakeTimeout a TLS handshake not complete after this long is aborted
 */
public record ListenerConfig(
        String name,
        HostPort address,
        ServerTlsConfig tls,
        HttpLimits limits,
        Duration idleTimeout,
        Duration handshakeTimeout) {

    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

    public ListenerConfig {
        name = name == null ? "main" : name;
        limits = limits == null ? HttpLimits.DEFAULT : limits;
        idleTimeout = idleTimeout == null ? DEFAULT_IDLE_TIMEOUT : idleTimeout;
        handshakeTimeout = handshakeTimeout == null ? DEFAULT_HANDSHAKE_TIMEOUT : handshakeTimeout;
    }
}
