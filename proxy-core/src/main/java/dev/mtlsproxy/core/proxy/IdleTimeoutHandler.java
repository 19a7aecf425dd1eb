package dev.mtlsproxy.core.proxy;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Fires {@link IdleStateEvent#ALL_IDLE_STATE_EVENT} when a connection has had no traffic either way for the
 * timeout: nothing read and nothing flushed. Handlers after it decide what idleness means (the relay closes the
 * client connection or answers 504; a pooled backend connection closes).
 *
 * <p>It replaces Netty's {@code IdleStateHandler}, which times a write by its completion: it swaps every write's
 * promise for a new one with a listener, two promises and a notification per message on the busiest path, and it
 * defeated the relay's void promises (issue #8). Here a write counts when it is flushed, the moment the proxy hands
 * it to the socket. A client that stops reading stops the flushes too, since the relay writes only while the client
 * connection is writable; so it is found idle one timeout after the last bytes the proxy could hand over.
 *
 * <p>One check is scheduled at a time, for when the timeout would pass if nothing happened; a check that finds
 * traffic since schedules itself for what remains. Event-loop confined.
 */
final class IdleTimeoutHandler extends ChannelDuplexHandler {

    private final long timeoutNanos;
    private ChannelHandlerContext ctx;
    private long lastTraffic;
    /** A read batch is under way: the connection is not idle, whatever the clock says. */
    private boolean reading;
    /** Something was written since the last flush. */
    private boolean written;
    private ScheduledFuture<?> check;
    private boolean stopped;

    IdleTimeoutHandler(Duration timeout) {
        this.timeoutNanos = timeout.toNanos();
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        if (ctx.channel().isActive() && ctx.channel().isRegistered()) {
            start();
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        start();
        ctx.fireChannelActive();
    }

    private void start() {
        if (check == null && !stopped) {
            lastTraffic = System.nanoTime();
            schedule(timeoutNanos);
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        reading = true;
        ctx.fireChannelRead(msg);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (reading) {
            reading = false;
            lastTraffic = System.nanoTime();
        }
        ctx.fireChannelReadComplete();
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        written = true;
        ctx.write(msg, promise);
    }

    @Override
    public void flush(ChannelHandlerContext ctx) {
        if (written) {
            written = false;
            lastTraffic = System.nanoTime();
        }
        ctx.flush();
    }

    private void schedule(long delayNanos) {
        check = ctx.executor().schedule(this::checkIdle, delayNanos, TimeUnit.NANOSECONDS);
    }

    private void checkIdle() {
        check = null;
        if (stopped || !ctx.channel().isOpen()) {
            return;
        }
        long remaining = reading ? timeoutNanos : timeoutNanos - (System.nanoTime() - lastTraffic);
        if (remaining > 0) {
            schedule(remaining);
            return;
        }
        // Still idle a timeout from now, the event comes again, as Netty's handler does.
        schedule(timeoutNanos);
        ctx.fireUserEventTriggered(IdleStateEvent.ALL_IDLE_STATE_EVENT);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        stop();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        stop();
    }

    private void stop() {
        stopped = true;
        if (check != null) {
            check.cancel(false);
            check = null;
        }
    }
}
