package dev.mtlsproxy.core.proxy;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundBuffer;
import io.netty.channel.ChannelPromise;
import io.netty.channel.FileRegion;
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
 * <p>A connection whose peer reads nothing of what waits for it, but keeps sending (a trickle of header lines, an
 * upload the proxy reads and drops while closing), has traffic all along. So it is idle too once nothing of what
 * waits to be sent has left for the timeout, whatever it sends: nginx's {@code send_timeout}. That is judged by
 * the checks, which see the queue of the socket no more often than once a timeout: such a connection is found idle
 * between one and two timeouts after it stopped reading.
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
    /**
     * What waited in the socket's queue at the last check that found it had moved: its first message, how far that
     * was written, the bytes queued in all, and when. All three unchanged a timeout later means nothing left.
     */
    private Object waitingHead;
    private long waitingIndex;
    private long waitingBytes;
    private long waitingSince;

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
        long now = System.nanoTime();
        long remaining = reading ? timeoutNanos : timeoutNanos - (now - lastTraffic);
        long stuckFor = stuckFor(now);
        if (remaining > 0 && stuckFor < timeoutNanos) {
            schedule(stuckFor < 0 ? remaining : Math.min(remaining, timeoutNanos - stuckFor));
            return;
        }
        // Still idle a timeout from now, the event comes again, as Netty's handler does.
        schedule(timeoutNanos);
        ctx.fireUserEventTriggered(IdleStateEvent.ALL_IDLE_STATE_EVENT);
    }

    /**
     * How long what waits in the socket's queue has not moved, as far as the checks saw: -1 when nothing waits. A
     * head message with the same index and the same total is taken as unmoved; a recycled buffer in the same place
     * with the same amount queued behind it, to the byte, is not a case worth more state.
     */
    private long stuckFor(long now) {
        ChannelOutboundBuffer queue = ctx.channel().unsafe().outboundBuffer();
        Object head = queue == null ? null : queue.current();
        if (head == null) {
            waitingHead = null;
            return -1;
        }
        long index = head instanceof ByteBuf bytes ? bytes.readerIndex()
                : head instanceof FileRegion region ? region.transferred() : 0;
        long queued = queue.totalPendingWriteBytes();
        if (head != waitingHead || index != waitingIndex || queued != waitingBytes) {
            waitingHead = head;
            waitingIndex = index;
            waitingBytes = queued;
            waitingSince = now;
        }
        return now - waitingSince;
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
