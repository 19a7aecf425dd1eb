package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.config.Durations;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.FullHttpRequest;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bounds the time a client takes to send a whole request, head and body: from the connection opening (its first
 * request) or from the first bytes after the previous request (the next ones) until the request is decoded in full.
 * Past it the connection is closed, as nginx's {@code client_header_timeout} and {@code client_body_timeout} do. The
 * idle timeout alone only catches a client that sends nothing: one byte a minute held a connection forever
 * (slowloris).
 *
 * <p>Two handlers share the state of one connection: {@link #bytes()} sits before the codec and, once the codec has
 * read what arrived, starts the clock if that left a request unfinished ({@link AdminHttpCodec#requestUnfinished()}:
 * also when the next request's first bytes came in the same read as the end of the one before); {@link #requests()}
 * sits after the aggregator and stops it when the whole request has arrived. A new instance per connection;
 * event-loop confined, so plain fields.
 */
final class RequestTimeout {

    private static final Logger log = LoggerFactory.getLogger(RequestTimeout.class);

    private final Duration timeout;
    private final Runnable timedOut;
    private final BooleanSupplier requestUnfinished;
    /** Set while a request is being received; the clock that closes the connection. */
    private ScheduledFuture<?> deadline;

    /**
     * @param timedOut          called for each connection closed because its request did not arrive whole in time
     * @param requestUnfinished whether bytes of a request that has not arrived whole are held (the codec's)
     */
    RequestTimeout(Duration timeout, Runnable timedOut, BooleanSupplier requestUnfinished) {
        this.timeout = timeout;
        this.timedOut = timedOut;
        this.requestUnfinished = requestUnfinished;
    }

    ChannelHandler bytes() {
        return new ChannelInboundHandlerAdapter() {
            @Override
            public void channelActive(ChannelHandlerContext ctx) {
                start(ctx);
                ctx.fireChannelActive();
            }

            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ctx.fireChannelRead(msg); // decoded by now, as far as the bytes so far go
                if (deadline == null && requestUnfinished.getAsBoolean() && ctx.channel().isActive()) {
                    start(ctx);
                }
            }

            @Override
            public void channelInactive(ChannelHandlerContext ctx) {
                stop();
                ctx.fireChannelInactive();
            }
        };
    }

    ChannelHandler requests() {
        return new ChannelInboundHandlerAdapter() {
            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                if (msg instanceof FullHttpRequest) {
                    stop();
                }
                ctx.fireChannelRead(msg);
            }
        };
    }

    private void start(ChannelHandlerContext ctx) {
        deadline = ctx.executor().schedule(() -> {
            // Debug only, a scanner can cause one per connection; the counter tells an operator they happen.
            log.debug("event=admin_request_timeout remote={} timeout={}", ctx.channel().remoteAddress(),
                    Durations.format(timeout));
            timedOut.run();
            ctx.close();
        }, timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    private void stop() {
        if (deadline != null) {
            deadline.cancel(false);
            deadline = null;
        }
    }
}
