package dev.mtlsproxy.config;

import java.net.URI;
import java.time.Duration;

/**
 * An upstream service.
 *
 * @param url                {@code http://host:port}; the path, if any, is ignored (requests keep their own path)
 * @param connectTimeout     a connection not established in this time fails the request with 502
 * @param responseTimeout    no response headers this long after the request was sent fails it with 504
 * @param maxIdleConnections keep-alive connections kept per event loop for reuse
 * @param idleTimeout        a pooled connection unused for this long is closed
 */
public record BackendConfig(
        URI url, Duration connectTimeout, Duration responseTimeout, Integer maxIdleConnections, Duration idleTimeout) {

    public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(5);
    public static final Duration DEFAULT_RESPONSE_TIMEOUT = Duration.ofSeconds(30);
    public static final int DEFAULT_MAX_IDLE_CONNECTIONS = 64;
    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(60);

    public BackendConfig {
        connectTimeout = connectTimeout == null ? DEFAULT_CONNECT_TIMEOUT : connectTimeout;
        responseTimeout = responseTimeout == null ? DEFAULT_RESPONSE_TIMEOUT : responseTimeout;
        maxIdleConnections = maxIdleConnections == null ? DEFAULT_MAX_IDLE_CONNECTIONS : maxIdleConnections;
        idleTimeout = idleTimeout == null ? DEFAULT_IDLE_TIMEOUT : idleTimeout;
    }
}
