package dev.mtlsproxy.core.proxy;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Caps the connections one listener holds open at once (nginx's {@code worker_connections}, HAProxy's
 * {@code maxconn}, Envoy's listener connection limit). A connection is counted from the moment it is accepted until
 * it closes, whatever it does in between: one that never sends a ClientHello holds its slot until the handshake
 * timeout closes it, exactly like an authenticated one. One over the limit is closed as soon as it is accepted,
 * before any TLS, rather than left in the listen backlog: the client learns at once and nothing waits on it.
 *
 * <p>It sits on the listening channel's pipeline, before Netty's acceptor ({@code ServerBootstrap.handler}), where
 * each accepted connection arrives as a message: one over the limit is closed right there, on the accepting loop,
 * never registered with an event loop nor given a pipeline, so a flood costs one accept and one close each.
 *
 * <p>Its count is the listener's {@code connections_open} gauge ({@link #open()}): the number the limit judges is
 * the number operators see.
 *
 * <p>Refusals are logged once per episode, not per connection, so that a flood does not flood the log too. An
 * episode starts with the first refusal and ends when the open connections fall a tenth below the limit (at least
 * one below): a flood that keeps the listener full, taking each slot again as soon as a connection frees it, is one
 * line, and the line that ends it says how many were refused.
 *
 * <p>Thread-safe and cheap: one atomic update at accept, on the listener's loop, and one at close, on whichever loop
 * the connection is on; nothing per request.
 */
@Sharable
public final class ConnectionLimit extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(ConnectionLimit.class);

    private final String listener;
    private final IntSupplier max;
    private final Runnable refused;
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicBoolean refusing = new AtomicBoolean();
    private final AtomicLong refusedInEpisode = new AtomicLong();
    /** The limit the last accepted connection was judged by: a reload may have changed it since. */
    private volatile int latestMax;

    /**
     * @param listener the listener's name, for the log
     * @param max      the limit in force, read at each accept: a reload may change it. It applies to connections
     *                 accepted from then on; those open over a lowered limit are left to finish.
     * @param refused  called for each connection refused (a metric)
     */
    public ConnectionLimit(String listener, IntSupplier max, Runnable refused) {
        this.listener = listener;
        this.max = max;
        this.refused = refused;
    }

    /** Client connections open now: accepted and admitted, not yet closed. */
    public int open() {
        return open.get();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof Channel child)) {
            ctx.fireChannelRead(msg);
            return;
        }
        if (admit(child)) {
            Slot slot = new Slot();
            // Added before registration. Normally the slot comes back here, when the connection closes.
            child.closeFuture().addListener(closed -> slot.release());
            try {
                ctx.fireChannelRead(child);
            } finally {
                // The acceptor has tried to register it by now. Registration refused by an event loop that shut
                // down closes the channel and completes its closeFuture, but the listener above is notified on that
                // same loop, which refuses the task too, and it is lost (Netty logs "Failed to submit a listener
                // notification task"). A channel closed by now is closed for good: give the slot back here; the
                // slot gives itself back once, whichever of the two comes first. A registration still in flight
                // completes on its loop, which notifies the listener itself.
                if (!child.isOpen()) {
                    slot.release();
                }
            }
        } else {
            // Not registered, so no event loop owns it: closing the socket is all there is to do, and what
            // Netty's own acceptor does with a child it could not register. Its closeFuture never completes; nothing
            // listens to it.
            child.unsafe().closeForcibly();
        }
    }

    private boolean admit(Channel child) {
        int limit = max.getAsInt();
        if (latestMax != limit) {
            latestMax = limit;
        }
        // Compare-and-set rather than add-then-undo: the gauge reading this count never shows limit + 1.
        int now;
        do {
            now = open.get();
            if (now >= limit) {
                refuse(child, limit);
                return false;
            }
        } while (!open.compareAndSet(now, now + 1));
        return true;
    }

    private void refuse(Channel child, int limit) {
        refused.run();
        refusedInEpisode.incrementAndGet();
        if (!refusing.get() && refusing.compareAndSet(false, true)) {
            log.warn("event=connection_limit_reached listener={} limit={} remote={} detail=\"new connections"
                    + " are closed as soon as they are accepted; logged again only after open connections fell"
                    + " a tenth below the limit\"", listener, limit, child.remoteAddress());
        }
    }

    /** One admitted connection's hold on the count: given back exactly once, however many paths report it. */
    private final class Slot {
        private final AtomicBoolean givenBack = new AtomicBoolean();

        void release() {
            if (givenBack.compareAndSet(false, true)) {
                released();
            }
        }
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
