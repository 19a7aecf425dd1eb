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
 * @param requestHeaderTimeout a request head (request line and header fields) not complete this long after its first
 *                         bytes were read is answered 408 and the connection closed: the idle timeout alone lets a
 *                         client that drips a byte now and then hold a connection for ever
 */
public record ListenerConfig(
        String name,
        HostPort address,
        ServerTlsConfig tls,
        HttpLimits limits,
        Duration idleTimeout,
        Duration handshakeTimeout,
        Integer maxConnections,
        Duration requestHeaderTimeout) {

    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    /** HAProxy's recommended {@code timeout http-request}; nginx's {@code client_header_timeout} is 60s. */
    public static final Duration DEFAULT_REQUEST_HEADER_TIMEOUT = Duration.ofSeconds(10);
    /**
     * Descriptors the default limit leaves to everything but client connections and their backend connections: the
     * admin listener (at most 64), listening sockets, event loop selectors, the jar and its libraries, logs, and the
     * certificate, key and CRL files a reload opens.
     */
    public static final int RESERVED_DESCRIPTORS = 256;
    /**
     * What the default limit budgets for a connection and the backend connection it may hold: an idle mTLS
     * connection costs about 20 KiB (docs/BENCHMARKS.md, memory scenario), and one moving a request holds read and
     * write buffers on both sides besides. Generous on purpose: the limit is there to stop a flood, not to pack.
     */
    public static final long MEMORY_PER_CONNECTION = 64 * 1024;
    /** The default where neither bound is known: Envoy Gateway's default order of magnitude. */
    public static final int FALLBACK_MAX_CONNECTIONS = 10_000;

    public ListenerConfig {
        name = name == null ? "main" : name;
        limits = limits == null ? HttpLimits.DEFAULT : limits;
        idleTimeout = idleTimeout == null ? DEFAULT_IDLE_TIMEOUT : idleTimeout;
        handshakeTimeout = handshakeTimeout == null ? DEFAULT_HANDSHAKE_TIMEOUT : handshakeTimeout;
        requestHeaderTimeout = requestHeaderTimeout == null ? DEFAULT_REQUEST_HEADER_TIMEOUT : requestHeaderTimeout;
    }

    /** The request header timeout at its default. */
    public ListenerConfig(String name, HostPort address, ServerTlsConfig tls, HttpLimits limits, Duration idleTimeout,
            Duration handshakeTimeout, Integer maxConnections) {
        this(name, address, tls, limits, idleTimeout, handshakeTimeout, maxConnections, null);
    }

    /** Every limit at its default. */
    public ListenerConfig(String name, HostPort address, ServerTlsConfig tls, HttpLimits limits, Duration idleTimeout,
            Duration handshakeTimeout) {
        this(name, address, tls, limits, idleTimeout, handshakeTimeout, null, null);
    }

    /**
     * The connections this listener admits at once: as configured; else the lower of two shares, each split
     * equally among the listeners so that together they cannot exhaust the process:
     * <ul>
     *   <li>descriptors: HAProxy's rule for its default maxconn, the open-file limit less a reserve, halved because
     *       each client connection may hold a backend connection too. At 1,024 that is 384 for one listener.</li>
     *   <li>memory: half of it at {@link #MEMORY_PER_CONNECTION} a connection. HAProxy derives maxconn from its
     *       memory limit the same way when it has one; without it, a container with 1,048,576 descriptors would
     *       default to about 524,000 connections, and an unauthenticated flood would end in the OOM killer, which
     *       takes every connection with it, rather than in refused handshakes.</li>
     * </ul>
     */
    public int connectionLimit(ProcessLimits process, int listeners) {
        if (maxConnections != null) {
            return maxConnections;
        }
        int shares = Math.max(1, listeners);
        long limit = Long.MAX_VALUE;
        if (process.openFiles() > 0) {
            limit = (process.openFiles() - RESERVED_DESCRIPTORS) / 2 / shares;
        }
        if (process.memoryBytes() > 0) {
            limit = Math.min(limit, process.memoryBytes() / 2 / MEMORY_PER_CONNECTION / shares);
        }
        if (limit == Long.MAX_VALUE) {
            return FALLBACK_MAX_CONNECTIONS;
        }
        // A limit below the reserve leaves nothing to share; one connection each keeps the listeners usable.
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, limit));
    }
}
