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
 * @param maxConnections   client connections open at once, counted from accept to close whether or not the TLS
 *                         handshake completed; one more is closed as soon as it is accepted. Null for the default,
 *                         see {@link #connectionLimit}
 */
public record ListenerConfig(
        String name,
        HostPort address,
        ServerTlsConfig tls,
        HttpLimits limits,
        Duration idleTimeout,
        Duration handshakeTimeout,
        Integer maxConnections) {

    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    /**
     * Descriptors the default limit leaves to everything but client connections and their backend connections: the
     * admin listener (at most 64), listening sockets, event loop selectors, the jar and its libraries, logs, and the
     * certificate, key and CRL files a reload opens.
     */
    public static final int RESERVED_DESCRIPTORS = 256;
    /** The default where the descriptor limit is unknown (not a Unix): Envoy Gateway's default order of magnitude. */
    public static final int FALLBACK_MAX_CONNECTIONS = 10_000;

    public ListenerConfig {
        name = name == null ? "main" : name;
        limits = limits == null ? HttpLimits.DEFAULT : limits;
        idleTimeout = idleTimeout == null ? DEFAULT_IDLE_TIMEOUT : idleTimeout;
        handshakeTimeout = handshakeTimeout == null ? DEFAULT_HANDSHAKE_TIMEOUT : handshakeTimeout;
    }

    /** Every limit at its default. */
    public ListenerConfig(String name, HostPort address, ServerTlsConfig tls, HttpLimits limits, Duration idleTimeout,
            Duration handshakeTimeout) {
        this(name, address, tls, limits, idleTimeout, handshakeTimeout, null);
    }

    /**
     * The connections this listener admits at once: as configured; else HAProxy's rule for its default maxconn, the
     * process's descriptor limit less a reserve, halved because each client connection may hold a backend
     * connection too, and here shared equally by the listeners, so that together they cannot run the process out
     * of descriptors. At a limit of 1,024 that is 384 for a single listener; in a container with 1,048,576 it is
     * about 524,000, where memory, not descriptors, is the bound and an explicit value fits better.
     *
     * @param descriptorLimit the process's limit on open files, or 0 or less when unknown
     * @param listeners       how many listeners the configuration has
     */
    public int connectionLimit(long descriptorLimit, int listeners) {
        if (maxConnections != null) {
            return maxConnections;
        }
        if (descriptorLimit <= 0) {
            return FALLBACK_MAX_CONNECTIONS;
        }
        long share = (descriptorLimit - RESERVED_DESCRIPTORS) / 2 / Math.max(1, listeners);
        // A limit below the reserve leaves nothing to share; one connection each keeps the listeners usable.
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, share));
    }
}
