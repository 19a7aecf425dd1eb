package dev.mtlsproxy.config;

import java.time.Duration;

/**
 * An active HTTP health check: every {@code interval}, each endpoint of the backend gets {@code GET path} on a new
 * connection (with the backend's TLS settings); a 2xx answer within {@code timeout} keeps it in rotation, anything
 * else takes it out until a later check passes.
 *
 * @param path     request path, e.g. {@code /healthz}
 * @param interval time between checks of one endpoint
 * @param timeout  connect, TLS and response headers together
 */
public record HealthCheckConfig(String path, Duration interval, Duration timeout) {

    public static final Duration DEFAULT_INTERVAL = Duration.ofSeconds(10);
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(2);

    public HealthCheckConfig {
        interval = interval == null ? DEFAULT_INTERVAL : interval;
        timeout = timeout == null ? DEFAULT_TIMEOUT : timeout;
    }
}
