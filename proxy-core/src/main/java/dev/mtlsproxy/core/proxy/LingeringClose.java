package dev.mtlsproxy.core.proxy;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.socket.DuplexChannel;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Closes a client connection after its last response without letting the client's unread bytes cost it that
 * response. A socket closed with bytes still unread in it (the rest of an upload the proxy refused or a backend
 * answered early, requests pipelined behind the last one) makes the kernel send a reset instead of a FIN: what of
 * the response is still in the send buffer is discarded, and a client still writing gets an error, which many
 * clients (JSSE among them) turn into dropping the connection before reading the response that did arrive.
 *
 * <p>So the sending side closes first (TLS close_notify, then FIN, both behind the response), and what the client
 * still sends is read and dropped until it closes its side, as RFC 9112 (section 9.6) advises and nginx's
 * {@code lingering_close} does. The wait is bounded like nginx's: the connection closes when the client has sent
 * nothing for {@link #QUIET} ({@code lingering_timeout}), when {@link #TOTAL} has passed since the response
 * ({@code lingering_time}), or once {@link #MAX_DISCARDED_BYTES} have been dropped, whichever comes first; the
 * listener's idle timeout and a drain deadline still apply. A client that is still sending when a bound is reached
 * gets the reset it would have got at once.
 *
 * <p>Installed right after the TLS handler when the lingering starts, it swallows every read, so nothing after it
 * sees a byte of the abandoned request; {@link #STARTED} tells the handlers after it so. Event-loop confined.
 */
final class LingeringClose extends ChannelInboundHandlerAdapter {

    /**
     * User event fired past this handler when the lingering starts: the request being read will never be read to its
     * end, so an exchange still being forwarded (a body found malformed mid-way) must let its backend go now, not
     * when the client finally closes.
     */
    static final Object STARTED = new Object() {
        @Override
        public String toString() {
            return "LingeringClose.STARTED";
        }
    };

    /** Closes a lingering connection after this long without a byte from the client (nginx's lingering_timeout). */
    static final Duration QUIET = Duration.ofSeconds(5);
    /** Closes a lingering connection this long after it started, however busy (nginx's lingering_time). */
    static final Duration TOTAL = Duration.ofSeconds(30);
    /**
     * Closes a lingering connection once this much has been read and dropped: covers the uploads of clients that
     * send everything before they read, and keeps what one refused request can make the proxy decrypt in check.
     */
    static final long MAX_DISCARDED_BYTES = 64L << 20;

    private static final String NAME = "linger";

    private final long deadline;
    private long lastRead;
    private long discarded;
    private ScheduledFuture<?> check;

    private LingeringClose(long now) {
        this.deadline = now + TOTAL.toNanos();
        this.lastRead = now;
    }

    /**
     * Closes {@code channel} after what has been written to it, lingering as described above. Call it once the last
     * response has been flushed: the close_notify goes out behind it. Once lingering, nothing more is written.
     */
    static void close(Channel channel) {
        ChannelPipeline pipeline = channel.pipeline();
        if (pipeline.get(NAME) != null) {
            return; // already lingering
        }
        if (!(channel instanceof DuplexChannel duplex) || !channel.isActive()) {
            channel.close();
            return;
        }
        SslHandler tls = pipeline.get(SslHandler.class);
        LingeringClose lingering = new LingeringClose(System.nanoTime());
        if (tls == null) {
            pipeline.addFirst(NAME, lingering);
        } else {
            pipeline.addAfter(pipeline.context(tls).name(), NAME, lingering);
        }
        pipeline.context(NAME).fireUserEventTriggered(STARTED);
        // Shutting the output fails writes still queued, so it waits until close_notify is in the socket.
        (tls == null ? channel.newSucceededFuture() : tls.closeOutbound()).addListener(f -> {
            if (f.isSuccess()) {
                duplex.shutdownOutput();
            } else {
                channel.close();
            }
        });
        channel.read();
    }

    /** Whether {@code channel} is closing lingering: no further request on it may be served. */
    static boolean isLingering(Channel channel) {
        return channel.pipeline().get(NAME) != null;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        schedule(ctx, QUIET.toNanos());
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof ByteBuf bytes) {
            discarded += bytes.readableBytes();
        }
        ReferenceCountUtil.release(msg);
        lastRead = System.nanoTime();
        if (discarded > MAX_DISCARDED_BYTES) {
            ctx.close();
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        ctx.read(); // until the client closes: end of stream closes the channel
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof DrainEvent) {
            return; // already closing, within bounds of its own
        }
        ctx.fireUserEventTriggered(evt);
    }

    private void schedule(ChannelHandlerContext ctx, long delayNanos) {
        check = ctx.executor().schedule(() -> checkBounds(ctx), delayNanos, TimeUnit.NANOSECONDS);
    }

    private void checkBounds(ChannelHandlerContext ctx) {
        check = null;
        if (!ctx.channel().isOpen()) {
            return;
        }
        long now = System.nanoTime();
        long next = Math.min(lastRead + QUIET.toNanos(), deadline);
        if (next - now <= 0) {
            ctx.close();
            return;
        }
        schedule(ctx, next - now);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        cancel();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        cancel();
    }

    private void cancel() {
        if (check != null) {
            check.cancel(false);
            check = null;
        }
    }
}
