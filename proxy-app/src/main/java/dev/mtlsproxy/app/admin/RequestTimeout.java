package dev.mtlsproxy.app.admin;

import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.FullHttpRequest;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Bounds the time a client takes to send a whole request, head and body: from the connection opening (its first
 * request) or from the first bytes after the previous request (the next ones) until the request is decoded in full.
 * Past it the connection is closed, as nginx's {@code client_header_timeout} and {@code client_body_timeout} do. The
 * idle timeout alone only catches a client that sends nothing: one byte a minute held a connection forever
 * (slowloris).
 *
 * <p>Two handlers share the state of one connection: {@link #bytes()} sits first in the pipeline and starts the
 * clock at the first read of a request, {@link #requests()} sits after the aggregator and stops it when the whole
 * request has arrived. A new instance per connection; event-loop confined, so plain fields.
 */
final class RequestTimeout {

    private static final Logger log = LoggerFactory.getLogger(RequestTimeout.class);

    private final Duration timeout;
    private final Runnable timedOut;
    /** Set while a request is being received; the clock that closes the connection. */
    private ScheduledFuture<?> deadline;

    /** @param timedOut called for each connection closed because its request did not arrive whole in time */
    RequestTimeout(Duration timeout, Runnable timedOut) {
        this.timeout = timeout;
        this.timedOut = timedOut;
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
                if (deadline == null) {
                    start(ctx);
                }
                ctx.fireChannelRead(msg);
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
            log.debug("event=admin_request_timeout remote={} timeout={}", ctx.channel().remoteAddress(), timeout);
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
