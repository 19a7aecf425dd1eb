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
 * timeout: nothing read, nothing flushed, and nothing of what waits in the socket's queue sent. Handlers after it
 * decide what idleness means (the relay closes the client connection or answers 504; a pooled backend connection
 * closes; a tunnel's backend connection is cut, {@link TunnelBackendDrain}).
 *
 * <p>It replaces Netty's {@code IdleStateHandler}, which times a write by its completion: it swaps every write's
 * promise for a new one with a listener, two promises and a notification per message on the busiest path, and it
 * defeated the relay's void promises (issue #8). Here a write counts when it is flushed, the moment the proxy hands
 * it to the socket, and bytes leaving the socket's queue count as the checks see them leave. So a peer that takes
 * what waits for it, however slowly, is not idle (nginx's {@code send_timeout} and {@code proxy_send_timeout} are
 * "between two successive write operations", not a total); one that stops taking it is.
 *
 * <p>A connection whose peer reads nothing of what waits for it, but keeps sending (a trickle of header lines, an
 * upload the proxy reads and drops while closing), has traffic all along. So it is idle too once nothing of what
 * waits to be sent has left for the timeout, whatever it sends.
 *
 * <p>Both are judged by the checks, which look at the socket's queue no more often than once a timeout and only
 * when they run: nothing is counted per write beyond a flag and a timestamp per flush. A connection whose queue
 * stopped moving is found idle between one and two timeouts after it stopped.
 *
 * <p>One check is scheduled at a time, for when the timeout would pass if nothing happened; a check that finds
 * traffic since schedules itself for what remains. Event-loop confined.
 */
final class IdleTimeoutHandler extends ChannelDuplexHandler {

    private final long timeoutNanos;
    private ChannelHandlerContext ctx;
    /*
     * The end of the last read batch, and the last flush that had something to send (System.nanoTime). Kept apart
     * because only a flush can add to the socket's queue, which the checks must know (see queueMoved).
     */
    private long lastRead;
    private long lastFlush;
    /** The last check that saw bytes leave the socket's queue, or could not tell that none did. */
    private long lastMoved;
    /** A read batch is under way: the connection is not idle, whatever the clock says. */
    private boolean reading;
    /** Something was written since the last flush. */
    private boolean written;
    private ScheduledFuture<?> check;
    private boolean stopped;
    /**
     * What the last check saw waiting in the socket's queue: its first message, how far that was written, the bytes
     * queued in all; when that check ran, and since when the checks have seen it unchanged (-1: nothing waits).
     */
    private Object waitingHead;
    private long waitingIndex;
    private long waitingBytes;
    private long lastCheck;
    private long unmovedSince = -1;

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
            long now = System.nanoTime();
            lastRead = now;
            lastFlush = now;
            lastMoved = now;
            lastCheck = now;
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
            lastRead = System.nanoTime();
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
            lastFlush = System.nanoTime();
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
        if (queueMoved(now)) {
            lastMoved = now;
        }
        long lastTraffic = Math.max(lastRead, Math.max(lastFlush, lastMoved));
        long remaining = reading ? timeoutNanos : timeoutNanos - (now - lastTraffic);
        long unmovedFor = unmovedSince < 0 ? -1 : now - unmovedSince;
        if (remaining > 0 && unmovedFor < timeoutNanos) {
            schedule(unmovedFor < 0 ? remaining : Math.min(remaining, timeoutNanos - unmovedFor));
            return;
        }
        // Still idle a timeout from now, the event comes again, as Netty's handler does.
        schedule(timeoutNanos);
        ctx.fireUserEventTriggered(IdleStateEvent.ALL_IDLE_STATE_EVENT);
    }

    /**
     * Whether bytes left the socket's queue since the last check, as far as can be known; false when nothing waits.
     * Also moves {@link #unmovedSince}.
     *
     * <p>Between two checks with no write in between, the queue can only have lost messages from its head or bytes
     * from its first message, so the same first message at the same index with the same total means nothing left,
     * for certain. Once the proxy wrote in between, it cannot say: a buffer recycled into the same object, at the same
     * index and with the same total queued behind it, would look unmoved although everything before it was sent. So a
     * write makes this check the new starting point, and counts as movement: the flush that made it counts as traffic
     * anyway, and a peer that stopped taking bytes stops the relay's writes to it (it writes while the socket is
     * writable), so the next check judges it. Writes that do not pass here (a TLS layer's own records, where this
     * handler sits after it) can only make the total grow, which counts as a change too.
     */
    private boolean queueMoved(long now) {
        boolean wroteSince = written || lastFlush - lastCheck >= 0;
        lastCheck = now;
        ChannelOutboundBuffer queue = ctx.channel().unsafe().outboundBuffer();
        Object head = queue == null ? null : queue.current();
        if (head == null) {
            waitingHead = null;
            unmovedSince = -1;
            return false;
        }
        long index = head instanceof ByteBuf bytes ? bytes.readerIndex()
                : head instanceof FileRegion region ? region.transferred() : 0;
        long queued = queue.totalPendingWriteBytes();
        boolean unmoved = !wroteSince && unmovedSince >= 0 && head == waitingHead && index == waitingIndex
                && queued == waitingBytes;
        waitingHead = head;
        waitingIndex = index;
        waitingBytes = queued;
        if (unmoved) {
            return false;
        }
        unmovedSince = now;
        return true;
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
