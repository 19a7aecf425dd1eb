package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.http.StrictHttpServerCodec;
import io.netty.channel.Channel;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;

/**
 * Keeps exactly one exchange in flight per connection, so every handler after it can assume HTTP/1.1 pipelining
 * does not exist. A request that arrives before the previous response has been written, or while the connection's
 * write buffer is full (its client is not reading), is held here (with whatever follows it) and released when that
 * response ends and there is room; since nothing reads the socket while anything is held, what is held is bounded by
 * one read, and what is queued for a client that does not read by the write buffer's limit and one response.
 *
 * <p>It also owns "read the next request": when a final response has been written, it either replays held messages
 * or asks the socket for more. State is per channel and event-loop confined.
 *
 * <p>Knowing whether a response is pending makes it the handler that drains a connection for shutdown
 * ({@link DrainEvent}). A keep-alive connection waiting for its next request with none of it read closes now, as
 * nginx closes its keep-alive connections: a client retries a request whose reused connection closed. Any other
 * connection is kept until its next response has been written, with {@code Connection: close}, and then closes: one
 * with a request in flight, one with bytes of its next request read, and one that has not had its first answer yet
 * (in its handshake, or between it and its first request), whose client may well be sending a request that no
 * client retries on a fresh connection. One not answered yet that has read nothing is given
 * {@link #FIRST_REQUEST_GRACE} from the drain, or from the end of its handshake when that comes later, for the first
 * bytes of its request, and is then closed as an idle one: a client that connected and sends nothing (a pool opened
 * ahead of need) must not hold every shutdown until the drain deadline. Held pipelined requests are dropped unanswered, as a closed keep-alive would; the close
 * lingers so that what the client pipelined or still sends cannot cost it the response it was sent (see
 * {@link LingeringClose}). Whatever closes the connection, once it starts closing nothing held or still decoded
 * from what was read before is served.
 */
final class ExchangeSequencer extends ChannelDuplexHandler {

    /**
     * How long a connection not answered yet, with nothing read, is kept by a drain: ample for the first bytes of a
     * request whose client finished its handshake just before, on any path a proxy in front of a service sees (a
     * handshake and a request are three round trips), and short against a shutdown's budget.
     */
    static final Duration FIRST_REQUEST_GRACE = Duration.ofSeconds(2);

    private final ArrayDeque<Object> held = new ArrayDeque<>();
    private boolean responsePending;
    private boolean interimResponse;
    private boolean draining;
    /** A final response has been written: the connection is a keep-alive one between requests when idle. */
    private boolean answered;
    /** Set when the connection started closing ({@link LingeringClose#STARTED}): nothing read is served any more. */
    private boolean closing;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (closing) {
            // Decoded from bytes read before the close began (the rest of one read, which the decoder goes on
            // decoding after the request that closed the connection): the response said Connection: close, so a
            // request forwarded now would be one the client never gets an answer to.
            ReferenceCountUtil.release(msg);
            return;
        }
        if (!held.isEmpty() || (msg instanceof HttpRequest && !mayStartExchange(ctx))) {
            held.add(msg);
            return;
        }
        if (msg instanceof HttpRequest) {
            responsePending = true;
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof DrainEvent) {
            draining = true;
            if (isIdleKeepAlive(ctx)) {
                ctx.close();
            } else if (!answered) {
                closeIfNothingArrives(ctx);
            }
            return;
        }
        if (evt == LingeringClose.STARTED) {
            closing = true;
            releaseHeld();
        }
        ctx.fireUserEventTriggered(evt);
    }

    /**
     * Gives a connection not answered yet {@link #FIRST_REQUEST_GRACE} after its handshake (or now, if that is done)
     * to show the first bytes of a request, then closes it if it has not: it is as idle as a keep-alive connection.
     */
    private void closeIfNothingArrives(ChannelHandlerContext ctx) {
        SslHandler tls = ctx.pipeline().get(SslHandler.class);
        if (tls != null && !tls.handshakeFuture().isDone()) {
            // A failed handshake closes the connection itself; the handshake timeout bounds one that never ends.
            tls.handshakeFuture().addListener(f -> {
                if (f.isSuccess()) {
                    closeIfNothingArrives(ctx);
                }
            });
            return;
        }
        ctx.executor().schedule(() -> {
            if (!answered && !closing && nothingRead(ctx)) {
                ctx.close();
            }
        }, FIRST_REQUEST_GRACE.toNanos(), TimeUnit.NANOSECONDS);
    }

    /**
     * nginx's idle keep-alive connection: answered at least once, and nothing of a next request read. Nothing held
     * is not enough: the decoder may have taken some lines of a head without a message to show for them yet.
     */
    private boolean isIdleKeepAlive(ChannelHandlerContext ctx) {
        return answered && nothingRead(ctx);
    }

    private boolean nothingRead(ChannelHandlerContext ctx) {
        return !responsePending && !readAhead(ctx);
    }

    /** Whether anything after the current request has been read: held here, or part of a head or body decoded. */
    private boolean readAhead(ChannelHandlerContext ctx) {
        if (!held.isEmpty()) {
            return true;
        }
        StrictHttpServerCodec codec = ctx.pipeline().get(StrictHttpServerCodec.class);
        return codec != null && codec.hasUnfinishedRequest();
    }

    /**
     * Whether the client sent anything after the request being answered: where a connection closing after this
     * response must linger ({@link LingeringClose}), since more may be unread behind it and a close with bytes
     * unread is a reset. A client whose last read brought nothing more closes at once, as nginx's does.
     */
    static boolean sentMore(Channel channel) {
        ChannelHandlerContext ctx = channel.pipeline().context(ExchangeSequencer.class);
        return ctx == null || ((ExchangeSequencer) ctx.handler()).readAhead(ctx);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        boolean endsExchange = false;
        if (msg instanceof HttpResponse response) {
            // 100 Continue and friends precede the final response; they do not end the exchange.
            interimResponse = response.status().codeClass() == HttpStatusClass.INFORMATIONAL;
            if (draining && !interimResponse) {
                HttpUtil.setKeepAlive(response, false);
            }
        }
        if (msg instanceof LastHttpContent) {
            endsExchange = !interimResponse;
            answered |= endsExchange;
            interimResponse = false;
        }
        if (endsExchange && draining) {
            ChannelPromise written = promise.unvoid();
            ctx.write(msg, written);
            written.addListener(f -> {
                if (f.isSuccess()) {
                    closeAfterLastResponse(ctx);
                } else {
                    ctx.close();
                }
            });
            responsePending = false;
            return;
        }
        ctx.write(msg, promise);
        if (endsExchange) {
            responsePending = false;
            if (held.isEmpty()) {
                // Only a read request, which reads nothing until the event loop gets back to the socket: safe here,
                // and a task per request less (issue #8).
                ctx.read();
            } else {
                // Deferred: replaying held requests fires them through handlers that may be inside this write.
                ctx.executor().execute(() -> next(ctx));
            }
        }
    }

    /**
     * Closes after the last response of a draining connection, always lingering ({@link LingeringClose}): a reset
     * would cut off the end of that response still in the send buffer. Nothing held does not mean nothing unread:
     * the socket is read during a response only if a read happens to be pending (none is after a request that
     * ended before its backend connection was up, for one), so a pipelined request can sit unread in the socket;
     * and a client may send after the last read, or after the close, which the kernel answers with a reset too.
     * The response said {@code Connection: close}, so a client that reads it closes, which ends the lingering.
     */
    private void closeAfterLastResponse(ChannelHandlerContext ctx) {
        releaseHeld();
        LingeringClose.close(ctx.channel()); // a no-op when a response the proxy made itself already lingers
    }

    private void next(ChannelHandlerContext ctx) {
        if (!ctx.channel().isActive() || responsePending) {
            return;
        }
        if (LingeringClose.isLingering(ctx.channel())) {
            // The response just written closed the connection: what the client pipelined behind it is dropped.
            releaseHeld();
            return;
        }
        if (held.isEmpty()) {
            ctx.read();
            return;
        }
        while (!held.isEmpty() && (mayStartExchange(ctx) || !(held.peek() instanceof HttpRequest))) {
            Object msg = held.poll();
            if (msg instanceof HttpRequest) {
                responsePending = true;
            }
            ctx.fireChannelRead(msg);
        }
        ctx.fireChannelReadComplete();
    }

    /**
     * A request is taken up when the previous response has been written, and the connection has room for its
     * response: one whose client does not read (it pipelines requests without reading the answers, or has stopped
     * reading) has the next request wait, as nginx does, instead of having answer after answer queued in memory. The
     * relay waits for room before each read of a response body, but an answer that arrives whole in one read (or one
     * the proxy makes itself) would otherwise be written whatever the room.
     */
    private boolean mayStartExchange(ChannelHandlerContext ctx) {
        return !responsePending && ctx.channel().isWritable();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        ctx.fireChannelWritabilityChanged();
        if (ctx.channel().isWritable() && !responsePending && !held.isEmpty()) {
            // Deferred: the change comes from within a flush, which a handler after this one may be making.
            ctx.executor().execute(() -> next(ctx));
        }
    }

    @Override
    public void read(ChannelHandlerContext ctx) {
        // Held messages come before anything new from the socket; they are replayed when the response ends.
        if (held.isEmpty()) {
            ctx.read();
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        releaseHeld();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        releaseHeld();
    }

    private void releaseHeld() {
        Object msg;
        while ((msg = held.poll()) != null) {
            ReferenceCountUtil.release(msg);
        }
    }
}
