package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.core.log.LogText;
import io.netty.channel.Channel;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.Future;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every backend of one configuration generation. A generation's backends are built (off the event loops), then
 * started (health checks begin), and closed when the generation retires: health checks stop and idle pooled
 * connections close; connections in use finish their exchange and are closed instead of pooled.
 */
public final class Backends implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(Backends.class);
    /** How long a reload waits for the old health checks to stop: far longer than a loop ever takes to answer. */
    static final Duration HANDOVER_WAIT = Duration.ofSeconds(5);

    private final Map<String, Backend> byName;
    private volatile boolean closed;

    private Backends(Map<String, Backend> byName) {
        this.byName = byName;
    }

    public static Backends build(Map<String, BackendConfig> configs) throws PemException, GeneralSecurityException,
            SSLException {
        return build(configs, null);
    }

    /**
     * Builds the backends of a new generation. A backend whose configuration and TLS files did not change is carried
     * over as it is, pools, health and all, so that a policy or listener certificate reload does not drop warm
     * backend connections; one whose certificate, key or CA bundle was rewritten in place is rebuilt with the new
     * material, and one whose names resolve elsewhere now with the new addresses (see
     * {@link Backend#build(String, BackendConfig, Backend)}).
     *
     * @param previous the current generation's backends, or null
     */
    public static Backends build(Map<String, BackendConfig> configs, Backends previous) throws PemException,
            GeneralSecurityException, SSLException {
        Map<String, Backend> built = new LinkedHashMap<>();
        for (Map.Entry<String, BackendConfig> e : configs.entrySet()) {
            Backend old = previous == null ? null : previous.get(e.getKey());
            Backend next = Backend.build(e.getKey(), e.getValue(), old);
            if (old != null && next != old && old.config().equals(e.getValue())) {
                if (!next.addresses().equals(old.addresses())) {
                    log.info("event=backend_addresses_changed backend={} addresses={}", e.getKey(),
                            next.addresses());
                } else if (next.tls() != old.tls()) {
                    log.info("event=backend_tls_reloaded backend={} reason=files_changed", e.getKey());
                }
                // Otherwise a name that still does not resolve was tried again: backend_unresolved said so.
            }
            built.put(e.getKey(), next);
        }
        return new Backends(Map.copyOf(built));
    }

    /** Closes the backends of this (retiring) generation that {@code next} did not carry over. */
    public void retireInto(Backends next) {
        for (Backend b : byName.values()) {
            if (next.get(b.name()) != b) {
                b.close();
            }
        }
    }

    /** The backend of this name, or null. */
    public Backend get(String name) {
        return byName.get(name);
    }

    public Collection<Backend> values() {
        return byName.values();
    }

    /**
     * Hands the active health verdicts over from {@code previous}, the generation this one replaces: stops the health
     * checks of every backend this generation rebuilt, waits until none of their results can be counted any more,
     * and then lets each endpoint read its predecessor's verdict again. Building copied the verdicts, but the old
     * checks went on probing while the rest of the generation was built and until the old generation retired; a
     * change one saw in that window was lost (an endpoint that went out came back in, for the new thresholds'
     * worth of failures). Now the newest result wins: the old checks have the last word up to here, the new ones
     * from {@link #start} on, and nothing is counted by both or by neither.
     *
     * <p>Call off the event loops, after the build succeeded (so that a failed build leaves the old checks running)
     * and before {@link #start}; should anything fail before this generation serves, {@link #giveHealthBackTo}
     * starts the old checks again. It waits for each old checker's loop to run one queued task, which loops that never
     * block do at once; should one not within {@code HANDOVER_WAIT}, its backend's verdicts are read anyway.
     */
    public void takeOverHealthFrom(Backends previous) {
        Map<Backend, Future<Void>> stopped = new LinkedHashMap<>();
        for (Backend b : byName.values()) {
            Backend old = previous.get(b.name());
            if (old != null && old != b) {
                stopped.put(b, old.stopHealthChecks());
            }
        }
        long deadline = System.nanoTime() + HANDOVER_WAIT.toNanos();
        for (Map.Entry<Backend, Future<Void>> e : stopped.entrySet()) {
            Backend b = e.getKey();
            long left = Math.max(0, deadline - System.nanoTime());
            if (!e.getValue().awaitUninterruptibly(left, TimeUnit.NANOSECONDS)) {
                log.warn("event=backend_health_handover backend={} result=timeout waited={}", b.name(),
                        Durations.format(HANDOVER_WAIT));
            }
            b.takeOverHealth(previous.get(b.name()));
        }
    }

    /**
     * Undoes {@link #takeOverHealthFrom} and {@link #start} for a generation that will not serve, because a step of
     * its reload failed before the swap: closes every backend this generation built anew (its checks stop; its pools
     * never held a connection) and starts the checks of the backends they replaced in {@code previous} again, each
     * on its own loop, from its own verdict and count, which only its own checks ever change. Backends carried over
     * as they are were never stopped. Call off the event loops.
     *
     * <p>Each backend is handed back whatever another's hand-back throws, an {@link Error} included: one that fails
     * must not leave the others' checks stopped for good. Only once every backend was tried is the first failure
     * thrown, with the later ones suppressed in it, for the caller to attach to the reload's own failure.
     */
    public void giveHealthBackTo(Backends previous) {
        Throwable first = null;
        for (Backend b : byName.values()) {
            Backend old = previous.get(b.name());
            if (old == b) {
                continue;
            }
            try {
                b.close();
                if (old != null) {
                    old.resumeHealthChecks();
                }
            } catch (Throwable e) {
                // Rejected: the event loops are shutting down, and the proxy with them. Anything else is a bug or a
                // broken installation, which the caller reports with its own failure.
                log.warn("event=backend_health_handback backend={} result=failed cause=\"{}\"", b.name(),
                        LogText.quoted(e.toString()));
                if (first == null) {
                    first = e;
                } else if (first != e) {
                    first.addSuppressed(e);
                }
            }
        }
        if (first instanceof RuntimeException e) {
            throw e;
        }
        if (first instanceof Error e) {
            throw e;
        }
        if (first != null) {
            // a checked exception thrown past the compiler: nothing here declares one
            throw new IllegalStateException(first);
        }
    }

    /** Starts the active health checks, on one loop of {@code group} each; their I/O never blocks. */
    public void start(EventLoopGroup group, Class<? extends Channel> channelType) {
        for (Backend b : byName.values()) {
            b.startHealthChecks(group, channelType);
        }
    }

    /** Stops health checks and closes idle pooled connections; safe to call more than once, from any thread. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        byName.values().forEach(Backend::close);
    }
}
