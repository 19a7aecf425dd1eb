package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.core.proxy.ConnectionLimit;
import io.netty.channel.Channel;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.LastHttpContent;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.function.BooleanSupplier;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The admin connections that are between requests, longest idle first: opened and not yet sent a byte, or answered
 * and kept alive with nothing more sent. When every slot is taken, the listener closes the one idle longest to
 * admit a new connection, as nginx reuses its idle keep-alive connections when {@code worker_connections} run out:
 * otherwise 64 clients that connect and wait (or send one request and keep the connection) would refuse every
 * Prometheus scrape and kubelet probe until the idle timeout. A connection receiving a request or waiting for its
 * answer is never closed this way; the request timeout bounds how long one can stay so.
 *
 * <p>Idle means no request is arriving or waiting for its answer: whether bytes of a request are held is the codec's
 * to say ({@link AdminHttpCodec#requestUnfinished()}), so the first bytes of a pipelined request that arrive in the
 * same read as the end of the one before make the connection busy, as they start its request timeout.
 *
 * <p>Confined to the admin listener's event loop, its only thread: plain fields. Per connection, two handlers
 * share its state: {@link Tracker#bytes()} first in the pipeline (bytes make it busy; once the codec has read them,
 * it is idle again if they finished a request already answered or started none) and {@link Tracker#exchanges()}
 * after the aggregator (a whole request received, its response written).
 */
final class IdleConnections {

    private static final Logger log = LoggerFactory.getLogger(IdleConnections.class);
    private static final long LOG_INTERVAL_NANOS = 60_000_000_000L;

    /** Insertion order is the order they became idle: a connection going idle again is removed and added. */
    private final Set<Channel> idle = new LinkedHashSet<>();
    /** Counts each close: the log line below is rate-limited, the count is what a dashboard or an alert can use. */
    private final Runnable evicted;
    private long closedSinceLog;
    private long lastLogNanos = System.nanoTime() - LOG_INTERVAL_NANOS;

    IdleConnections(Runnable evicted) {
        this.evicted = evicted;
    }

    /**
     * On the listening channel, before the {@link ConnectionLimit}: a connection accepted with every slot taken first
     * closes the connection idle longest, whose slot is free again before the limit judges the new one (the close
     * runs on the listener's only thread, and the slot is given back by a listener of that close).
     */
    ChannelHandler makeRoom(ConnectionLimit connections, IntSupplier max) {
        return new ChannelInboundHandlerAdapter() {
            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                if (msg instanceof Channel && connections.open() >= max.getAsInt()) {
                    closeOldest();
                }
                ctx.fireChannelRead(msg);
            }
        };
    }

    /** Closes the connection idle longest to make room for a new one; false when none is idle. */
    boolean closeOldest() {
        Iterator<Channel> oldest = idle.iterator();
        if (!oldest.hasNext()) {
            return false;
        }
        Channel channel = oldest.next();
        oldest.remove();
        channel.close();
        evicted.run();
        closedSinceLog++;
        long now = System.nanoTime();
        if (now - lastLogNanos >= LOG_INTERVAL_NANOS) {
            // A flood of connections would close one per accept: a line a minute says it happens, and how often.
            log.warn("event=admin_idle_connection_closed closed={} detail=\"every admin connection slot was taken:"
                    + " the connection idle longest was closed to admit a new one (logged at most once a minute)\"",
                    closedSinceLog);
            closedSinceLog = 0;
            lastLogNanos = now;
        }
        return true;
    }

    /**
     * Starts tracking a connection just admitted: idle until its first bytes arrive.
     *
     * @param requestUnfinished whether bytes of a request that has not arrived whole are held (the codec's)
     */
    Tracker track(Channel channel, BooleanSupplier requestUnfinished) {
        return new Tracker(channel, requestUnfinished);
    }

    final class Tracker {

        private final Channel channel;
        private final BooleanSupplier requestUnfinished;
        /** Requests received whose response is not yet written. */
        private int unanswered;

        private Tracker(Channel channel, BooleanSupplier requestUnfinished) {
            this.channel = channel;
            this.requestUnfinished = requestUnfinished;
            idle.add(channel);
            channel.closeFuture().addListener(closed -> idle.remove(channel));
        }

        ChannelHandler bytes() {
            return new ChannelInboundHandlerAdapter() {
                @Override
                public void channelRead(ChannelHandlerContext ctx, Object msg) {
                    idle.remove(channel);
                    ctx.fireChannelRead(msg); // decoded by now, as far as the bytes so far go
                    idleIfBetweenRequests();
                }
            };
        }

        ChannelHandler exchanges() {
            return new ChannelDuplexHandler() {
                @Override
                public void channelRead(ChannelHandlerContext ctx, Object msg) {
                    if (msg instanceof FullHttpRequest) {
                        unanswered++;
                    }
                    ctx.fireChannelRead(msg);
                }

                @Override
                public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
                    if (msg instanceof LastHttpContent) {
                        promise.addListener(written -> answered());
                    }
                    ctx.write(msg, promise);
                }
            };
        }

        /** On the write of a response, before a listener added after this one closes the connection. */
        private void answered() {
            unanswered--;
            idleIfBetweenRequests();
        }

        private void idleIfBetweenRequests() {
            if (unanswered == 0 && !requestUnfinished.getAsBoolean() && channel.isActive()) {
                idle.add(channel); // at the end: idle from now
            }
        }
    }
}
