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
 * when they run (a tunnel's, at its other connection's too): nothing is counted per write beyond a flag and a
 * timestamp per flush. A connection whose queue stopped moving is found idle between one and two timeouts after it
 * stopped. A queue that emptied since the last look moved: the peer may still be reading its last bytes from the
 * kernel's buffer, which the proxy cannot see, and gets a whole timeout from the look that saw them gone.
 *
 * <p>The two connections of a WebSocket tunnel are {@linkplain #joinTunnel joined}: each one's traffic counts for
 * both, so a side the proxy stopped reading because the other side's queue is full is not idle while that queue
 * moves, however long it takes (nginx times each direction of an upgraded connection on its own, and never the side
 * it is not reading). A side whose own queue stops moving is still idle a timeout after, whatever the other does:
 * no peer that reads nothing holds a tunnel for ever. Both connections are on the same event loop.
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
    /** The last look at the socket's queue that saw bytes leave it, or could not tell that none did. */
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
    /** The other connection of the tunnel this one carries, while both are open; null outside a tunnel. */
    private IdleTimeoutHandler tunnelPeer;

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

    /**
     * Joins the two connections of a tunnel, on their event loop: from now on the traffic of either keeps both from
     * being idle, until either handler stops.
     */
    static void joinTunnel(IdleTimeoutHandler client, IdleTimeoutHandler backend) {
        client.tunnelPeer = backend;
        backend.tunnelPeer = client;
    }

    /**
     * Whether bytes wait in the socket's queue and none of them has left for the timeout, as of now. A tunnel found
     * idle asks it of its backend side, to tell a backend that stopped reading from one that is still taking them.
     */
    boolean stalled() {
        long now = System.nanoTime();
        lastTraffic(now);
        return unmovedSince >= 0 && now - unmovedSince >= timeoutNanos;
    }

    private void checkIdle() {
        check = null;
        if (stopped || !ctx.channel().isOpen()) {
            return;
        }
        long now = System.nanoTime();
        long lastTraffic = lastTraffic(now);
        boolean busy = reading;
        if (tunnelPeer != null) {
            lastTraffic = Math.max(lastTraffic, tunnelPeer.lastTraffic(now));
            busy |= tunnelPeer.reading;
        }
        long remaining = busy ? timeoutNanos : timeoutNanos - (now - lastTraffic);
        long unmovedFor = unmovedSince < 0 ? -1 : now - unmovedSince;
        if (remaining > 0 && unmovedFor < timeoutNanos) {
            schedule(unmovedFor < 0 ? remaining : Math.min(remaining, timeoutNanos - unmovedFor));
            return;
        }
        // Still idle a timeout from now, the event comes again, as Netty's handler does.
        schedule(timeoutNanos);
        ctx.fireUserEventTriggered(IdleStateEvent.ALL_IDLE_STATE_EVENT);
    }

    /** The last read, flush or movement of the socket's queue, which it looks at now. */
    private long lastTraffic(long now) {
        if (queueMoved(now)) {
            lastMoved = now;
        }
        return Math.max(lastRead, Math.max(lastFlush, lastMoved));
    }

    /**
     * Whether bytes left the socket's queue since the last look, as far as can be known; false when nothing waits,
     * unless something did at the last look. Also moves {@link #unmovedSince}.
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
            // What waited at the last look has all left since: movement, the last of it, which the peer may still be
            // reading from the kernel's buffer for a while, unseen; it gets a whole timeout from here
            boolean emptied = waitingHead != null;
            waitingHead = null;
            unmovedSince = -1;
            return emptied;
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
        if (tunnelPeer != null) {
            // the other side is judged on its own from now on: what is left of the tunnel is its close
            tunnelPeer.tunnelPeer = null;
            tunnelPeer = null;
        }
        if (check != null) {
            check.cancel(false);
            check = null;
        }
    }
}
