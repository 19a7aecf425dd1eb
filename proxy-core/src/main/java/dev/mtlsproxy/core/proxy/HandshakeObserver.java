package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.micrometer.core.instrument.Counter;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * Turns handshake outcomes into metrics, and rations handshake-failure log lines: a scanner can cause thousands of
 * failures a second, and each is counted, but at most {@link #LOG_LINES_PER_SECOND} are logged (the rest are
 * counted as suppressed). Shared by all connections; lock-free.
 */
final class HandshakeObserver implements IdentityHandler.HandshakeListener {

    static final int LOG_LINES_PER_SECOND = 20;

    private final ProxyMetrics metrics;
    private final Supplier<ProxyRuntime> runtime;
    private final Clock clock;
    private final Counter suppressed;
    /** Start of the current one-second window, and lines logged in it. */
    private final AtomicLong window = new AtomicLong();
    private final AtomicLong logged = new AtomicLong();

    HandshakeObserver(ProxyMetrics metrics, Supplier<ProxyRuntime> runtime, Clock clock) {
        this.metrics = metrics;
        this.runtime = runtime;
        this.clock = clock;
        this.suppressed = metrics.handshakeLogSuppressed();
    }

    @Override
    public void succeeded(String listener, PeerIdentity identity, String group, long handshakeNanos) {
        metrics.handshakeSucceeded(listener, handshakeNanos, runtime.get().policy().identify(identity), group,
                Duration.between(clock.instant(), identity.notAfter()));
    }

    @Override
    public void failed(String listener, HandshakeFailureReason reason) {
        metrics.handshakeFailed(listener, reason);
    }

    @Override
    public boolean mayLogFailure() {
        long second = System.nanoTime() / 1_000_000_000L;
        long current = window.get();
        if (current != second && window.compareAndSet(current, second)) {
            logged.set(0);
        }
        if (logged.incrementAndGet() <= LOG_LINES_PER_SECOND) {
            return true;
        }
        suppressed.increment();
        return false;
    }
}
