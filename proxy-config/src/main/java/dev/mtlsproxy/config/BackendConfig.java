package dev.mtlsproxy.config;

import java.net.URI;
import java.time.Duration;
import java.util.List;

/**
 * An upstream service: one or more endpoints that serve the same thing, all {@code http://} or all {@code https://}.
 *
 * @param url                shorthand for a single endpoint; give either this or {@code endpoints}
 * @param endpoints          {@code http://host:port} or {@code https://host:port}, tried round robin; the path, if
 *                           any, is ignored (requests keep their own path)
 * @param tls                how the proxy verifies (and authenticates to) https endpoints; required for them
 * @param connectTimeout     a connection (TCP and TLS handshake) not established in this time fails the attempt
 * @param responseTimeout    no response headers this long after the request was sent fails it with 504
 * @param bodyIdleTimeout    no response body bytes for this long, while the proxy is waiting for some, ends the
 *                           response (the client connection is closed, so the truncation shows)
 * @param maxIdleConnections keep-alive connections kept per endpoint and event loop for reuse
 * @param idleTimeout        a pooled connection unused for this long is closed
 * @param coolDown           after a failed connection attempt the endpoint gets no requests for this long
 * @param healthCheck        optional active HTTP health check of every endpoint
 */
public record BackendConfig(
        URI url,
        List<URI> endpoints,
        BackendTlsConfig tls,
        Duration connectTimeout,
        Duration responseTimeout,
        Duration bodyIdleTimeout,
        Integer maxIdleConnections,
        Duration idleTimeout,
        Duration coolDown,
        HealthCheckConfig healthCheck) {

    public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(5);
    public static final Duration DEFAULT_RESPONSE_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_BODY_IDLE_TIMEOUT = Duration.ofSeconds(60);
    public static final int DEFAULT_MAX_IDLE_CONNECTIONS = 64;
    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_COOL_DOWN = Duration.ofSeconds(10);

    public BackendConfig {
        endpoints = endpoints == null ? List.of() : List.copyOf(endpoints);
        connectTimeout = connectTimeout == null ? DEFAULT_CONNECT_TIMEOUT : connectTimeout;
        responseTimeout = responseTimeout == null ? DEFAULT_RESPONSE_TIMEOUT : responseTimeout;
        bodyIdleTimeout = bodyIdleTimeout == null ? DEFAULT_BODY_IDLE_TIMEOUT : bodyIdleTimeout;
        maxIdleConnections = maxIdleConnections == null ? DEFAULT_MAX_IDLE_CONNECTIONS : maxIdleConnections;
        idleTimeout = idleTimeout == null ? DEFAULT_IDLE_TIMEOUT : idleTimeout;
        coolDown = coolDown == null ? DEFAULT_COOL_DOWN : coolDown;
    }

    /** A plain-HTTP backend with a single endpoint and every other setting at its default. */
    public BackendConfig(URI url, Duration connectTimeout, Duration responseTimeout, Integer maxIdleConnections,
            Duration idleTimeout) {
        this(url, null, null, connectTimeout, responseTimeout, null, maxIdleConnections, idleTimeout, null, null);
    }

    /** Several endpoints (or one), with TLS settings for https ones, every other setting at its default. */
    public static BackendConfig of(List<URI> endpoints, BackendTlsConfig tls) {
        return new BackendConfig(null, endpoints, tls, null, null, null, null, null, null, null);
    }

    /** The endpoints to use: {@code endpoints}, or the single {@code url}. */
    public List<URI> endpointUrls() {
        return url != null && endpoints.isEmpty() ? List.of(url) : endpoints;
    }

    public BackendConfig withEndpoints(List<URI> replaced) {
        return new BackendConfig(null, replaced, tls, connectTimeout, responseTimeout, bodyIdleTimeout,
                maxIdleConnections, idleTimeout, coolDown, healthCheck);
    }

    public BackendConfig withTimeouts(Duration connect, Duration response, Duration bodyIdle) {
        return new BackendConfig(url, endpoints, tls, connect, response, bodyIdle, maxIdleConnections, idleTimeout,
                coolDown, healthCheck);
    }

    public BackendConfig withCoolDown(Duration replaced) {
        return new BackendConfig(url, endpoints, tls, connectTimeout, responseTimeout, bodyIdleTimeout,
                maxIdleConnections, idleTimeout, replaced, healthCheck);
    }

    public BackendConfig withHealthCheck(HealthCheckConfig replaced) {
        return new BackendConfig(url, endpoints, tls, connectTimeout, responseTimeout, bodyIdleTimeout,
                maxIdleConnections, idleTimeout, coolDown, replaced);
    }
}
