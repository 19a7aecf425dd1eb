package dev.mtlsproxy.core.proxy;

import io.netty.channel.Channel;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Caps the connections one listener holds open at once (nginx's {@code worker_connections}, HAProxy's
 * {@code maxconn}, Envoy's listener connection limit). A connection is counted from the moment it is accepted until
 * it closes, whatever it does in between: one that never sends a ClientHello holds its slot until the handshake
 * timeout closes it, exactly like an authenticated one. One over the limit is closed as soon as it is accepted,
 * before any TLS, rather than left in the listen backlog: the client learns at once and nothing waits on it.
 *
 * <p>Refusals are logged once per episode, not per connection, so that a flood does not flood the log too. An
 * episode starts with the first refusal and ends when the open connections fall a tenth below the limit (at least
 * one below): a flood that keeps the listener full, taking each slot again as soon as a connection frees it, is one
 * line, and the line that ends it says how many were refused.
 *
 * <p>Thread-safe and cheap: one atomic add at accept and one at close, on whichever event loop the connection is on;
 * nothing per request.
 */
public final class ConnectionLimit {

    private static final Logger log = LoggerFactory.getLogger(ConnectionLimit.class);

    private final String listener;
    private final Runnable refused;
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicBoolean refusing = new AtomicBoolean();
    private final AtomicLong refusedInEpisode = new AtomicLong();
    /** The limit the last accepted connection was judged by: a reload may have changed it since. */
    private volatile int latestMax;

    /**
     * @param listener the listener's name, for the log
     * @param refused  called for each connection refused (a metric)
     */
    public ConnectionLimit(String listener, Runnable refused) {
        this.listener = listener;
        this.refused = refused;
    }

    /**
     * Counts a connection just accepted, or refuses it when {@code max} are open already; the caller closes a
     * refused one. A reload may change {@code max}: it applies to connections accepted from then on, and those open
     * over a lowered limit are left to finish.
     */
    public boolean admit(Channel ch, int max) {
        if (latestMax != max) {
            latestMax = max;
        }
        if (open.incrementAndGet() > max) {
            open.decrementAndGet();
            refused.run();
            refusedInEpisode.incrementAndGet();
            if (!refusing.get() && refusing.compareAndSet(false, true)) {
                log.warn("event=connection_limit_reached listener={} limit={} remote={} detail=\"new connections"
                        + " are closed as soon as they are accepted; logged again only after open connections fell"
                        + " a tenth below the limit\"", listener, max, ch.remoteAddress());
            }
            return false;
        }
        ch.closeFuture().addListener(closed -> released());
        return true;
    }

    private void released() {
        int now = open.decrementAndGet();
        int max = latestMax;
        if (refusing.get() && now <= max - Math.max(1, max / 10) && refusing.compareAndSet(true, false)) {
            log.info("event=connection_limit_cleared listener={} limit={} open={} refused={}", listener, max, now,
                    refusedInEpisode.getAndSet(0));
        }
    }
}
