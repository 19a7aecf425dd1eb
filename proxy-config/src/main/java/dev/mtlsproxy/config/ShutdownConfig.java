package dev.mtlsproxy.config;

import java.time.Duration;

/**
 * Graceful shutdown on SIGTERM: {@code /readyz} turns 503 at once, the listeners keep accepting for
 * {@code drainDelay} (so load balancers and Kubernetes endpoints stop sending new connections), then stop accepting;
 * requests in flight get up to {@code drainTimeout} to finish, idle keep-alive connections are closed at once.
 * The defaults (5s + 20s) fit inside Kubernetes' default 30s termination grace period.
 *
 * @param drainDelay   how long to keep accepting after readiness turned 503; zero stops accepting at once
 * @param drainTimeout how long requests in flight may take to finish once accepting stopped; then they are cut
 */
public record ShutdownConfig(Duration drainDelay, Duration drainTimeout) {

    public static final Duration DEFAULT_DRAIN_DELAY = Duration.ofSeconds(5);
    public static final Duration DEFAULT_DRAIN_TIMEOUT = Duration.ofSeconds(20);
    public static final ShutdownConfig DEFAULT = new ShutdownConfig(null, null);

    public ShutdownConfig {
        drainDelay = drainDelay == null ? DEFAULT_DRAIN_DELAY : drainDelay;
        drainTimeout = drainTimeout == null ? DEFAULT_DRAIN_TIMEOUT : drainTimeout;
    }
}
