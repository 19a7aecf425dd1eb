package dev.mtlsproxy.core.proxy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOutboundBuffer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.socket.DuplexChannel;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Closes a client connection after its last response without letting the client's unread bytes, or its slowness,
 * cost it that response. A socket closed with bytes still unread in it (the rest of an upload the proxy refused or a
 * backend answered early, requests pipelined behind the last one) makes the kernel send a reset instead of a FIN:
 * what of the response is still in the send buffer is discarded, and a client still writing gets an error, which
 * many clients (JSSE among them) turn into dropping the connection before reading the response that did arrive.
 *
 * <p>So the sending side closes first (TLS close_notify, then FIN, both behind the response), and what the client
 * still sends is read and dropped until it closes its side, as RFC 9112 (section 9.6) advises and nginx's
 * {@code lingering_close} does. The wait is bounded like nginx's, from when the response has left the proxy: the
 * connection closes when the client has sent nothing for {@link #QUIET} ({@code lingering_timeout}), when
 * {@link #TOTAL} has passed ({@code lingering_time}), or once {@link #MAX_DISCARDED_BYTES} have been dropped,
 * whichever comes first; a drain deadline still applies. A client still sending when a bound is reached gets the
 * reset it would have got at once. Until the response has left, which takes as long as a slow client takes to read
 * what the kernel cannot hold, the listener's idle timeout bounds the wait ({@link IdleTimeoutHandler}: a response
 * none of which leaves for that long ends the connection, whatever the client sends meanwhile).
 *
 * <p>A client that sent nothing after its request needs no lingering, only a close once the response has left
 * ({@link #closeAfterWrites}): closing at once would give what still waits in the proxy the 3 s Netty's TLS handler
 * allows its close_notify, and then drop it.
 *
 * <p>Installed right after the TLS handler when the lingering starts, it swallows every read, so nothing after it
 * sees a byte of the abandoned request; {@link #STARTED} tells the handlers after it so. Event-loop confined.
 */
final class LingeringClose extends ChannelInboundHandlerAdapter {

    /**
     * User event fired past the TLS handler when the connection starts closing after its last response: nothing
     * read from now on is served, and the request being read will never be read to its end, so an exchange still
     * being forwarded (a body found malformed mid-way) must let its backend go now, not when the client finally
     * closes.
     */
    static final Object STARTED = new Object() {
        @Override
        public String toString() {
            return "LingeringClose.STARTED";
        }
    };

    /**
     * Closes a lingering connection after this long without a byte from the client, once the response has left
     * (nginx's lingering_timeout).
     */
    static final Duration QUIET = Duration.ofSeconds(5);
    /** Closes a lingering connection this long after the response left, however busy (nginx's lingering_time). */
    static final Duration TOTAL = Duration.ofSeconds(30);
    /**
     * Closes a lingering connection once this much has been read and dropped: covers the uploads of clients that
     * send everything before they read, and keeps what one refused request can make the proxy decrypt in check.
     */
    static final long MAX_DISCARDED_BYTES = 64L << 20;

    private static final String NAME = "linger";

    /** Whether the response, and the close_notify behind it, have left the proxy: the bounds above run from then. */
    private boolean sent;
    private long deadline;
    private long lastRead;
    private long discarded;
    private ScheduledFuture<?> check;

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
        LingeringClose lingering = new LingeringClose();
        if (tls == null) {
            pipeline.addFirst(NAME, lingering);
        } else {
            pipeline.addAfter(pipeline.context(tls).name(), NAME, lingering);
        }
        pipeline.context(NAME).fireUserEventTriggered(STARTED);
        // Shutting the output fails writes still queued, so it waits until close_notify is in the socket.
        ChannelFuture closeNotify = tls == null ? channel.writeAndFlush(Unpooled.EMPTY_BUFFER) : tls.closeOutbound();
        closeNotify.addListener(f -> {
            if (f.isSuccess()) {
                duplex.shutdownOutput();
                lingering.sent(pipeline.context(NAME));
            } else {
                channel.close();
            }
        });
        channel.read();
    }

    /**
     * Closes {@code channel} once what has been written to it has left the proxy, without lingering: for a client
     * that sent nothing after its last request. Call it once the last response has been flushed. Nothing read
     * meanwhile is served ({@link #STARTED}); the listener's idle timeout closes the connection of a client that
     * stopped reading.
     */
    static void closeAfterWrites(Channel channel) {
        ChannelPipeline pipeline = channel.pipeline();
        if (pipeline.get(NAME) != null) {
            return; // lingering, which closes in its own time
        }
        ChannelOutboundBuffer queue = channel.unsafe().outboundBuffer();
        if (queue == null || queue.isEmpty()) {
            // The socket took all of it, the usual case: close now. A close per connection with a write and a
            // listener more cost the handshake benchmark, which closes every connection so, 2% of its CPU (issue #8).
            channel.close();
            return;
        }
        SslHandler tls = pipeline.get(SslHandler.class);
        (tls == null ? pipeline.firstContext() : pipeline.context(tls)).fireUserEventTriggered(STARTED);
        channel.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(f -> {
            if (!f.isSuccess() || !isLingering(channel)) {
                channel.close(); // unless a drain's close started lingering meanwhile
            }
        });
    }

    /** Whether {@code channel} is closing lingering: no further request on it may be served. */
    static boolean isLingering(Channel channel) {
        return channel.pipeline().get(NAME) != null;
    }

    /** The response and the close_notify behind it are in the socket: the lingering bounds start now. */
    private void sent(ChannelHandlerContext ctx) {
        if (ctx == null || sent) {
            return; // closed meanwhile
        }
        sent = true;
        long now = System.nanoTime();
        deadline = now + TOTAL.toNanos();
        lastRead = now;
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
