package dev.mtlsproxy.config;

import java.time.Duration;

/**
 * An active HTTP health check: every {@code interval}, each endpoint of the backend gets {@code GET path} on a new
 * connection (with the backend's TLS settings); a 2xx answer within {@code timeout} passes, anything else fails. An
 * endpoint leaves rotation after {@code unhealthyThreshold} consecutive failures and comes back after
 * {@code healthyThreshold} consecutive passes (HAProxy's {@code fall} and {@code rise}), so one lost check does not
 * take it out and one lucky answer does not put it back.
 *
 * <p>Of these settings, {@code path} is part of what a check asks; a reload that changes it lets the new check's
 * first result decide, since results of another question say nothing about this one's. The others only change when
 * and how patiently it is asked and how the answers are counted. A setting added here that changes the request
 * belongs in proxy-core's {@code HealthQuestion}, which lists the whole question (the backend's TLS settings are part
 * of it too); see the README, "Health at start-up and reload".
 *
 * <p>The defaults are HAProxy's ({@code rise 2}, {@code fall 3}); Envoy has none and makes every user choose. With
 * the default interval an endpoint that answers but fails is out within about three intervals, the same as a
 * Kubernetes readiness probe at its defaults (10s period, 3 failures); one that refuses connections is out at its
 * first refused request anyway, through passive health ({@code coolDown}).
 *
 * @param path               request path, e.g. {@code /healthz}
 * @param interval           time between checks of one endpoint
 * @param timeout            connect, TLS and response headers together
 * @param healthyThreshold   consecutive passes that bring an endpoint out of rotation back in
 * @param unhealthyThreshold consecutive failures that take an endpoint in rotation out
 */
public record HealthCheckConfig(String path, Duration interval, Duration timeout, Integer healthyThreshold,
        Integer unhealthyThreshold) {

    public static final Duration DEFAULT_INTERVAL = Duration.ofSeconds(10);
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(2);
    public static final int DEFAULT_HEALTHY_THRESHOLD = 2;
    public static final int DEFAULT_UNHEALTHY_THRESHOLD = 3;

    public HealthCheckConfig {
        interval = interval == null ? DEFAULT_INTERVAL : interval;
        timeout = timeout == null ? DEFAULT_TIMEOUT : timeout;
        healthyThreshold = healthyThreshold == null ? DEFAULT_HEALTHY_THRESHOLD : healthyThreshold;
        unhealthyThreshold = unhealthyThreshold == null ? DEFAULT_UNHEALTHY_THRESHOLD : unhealthyThreshold;
    }

    /** A check with the default thresholds. */
    public HealthCheckConfig(String path, Duration interval, Duration timeout) {
        this(path, interval, timeout, null, null);
    }

    public HealthCheckConfig withPath(String replaced) {
        return new HealthCheckConfig(replaced, interval, timeout, healthyThreshold, unhealthyThreshold);
    }

    public HealthCheckConfig withThresholds(int healthy, int unhealthy) {
        return new HealthCheckConfig(path, interval, timeout, healthy, unhealthy);
    }
}
