package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.backend.BackendPool;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderResultProvider;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.ssl.SslCloseCompletionEvent;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.ReferenceCountUtil;

/**
 * The backend connection's end of the relay: hands everything to the {@link ForwardingHandler} that leased the
 * connection, or, while the connection idles in the pool, closes it on any sign of life (data, idle timeout, EOF).
 * Event-loop confined: the owner is on the same loop.
 */
final class BackendHandler extends ChannelInboundHandlerAdapter {

    /** The exchange using this connection; null while idle in the pool. */
    ForwardingHandler owner;
    private final BackendPool pool;
    /**
     * A final response head, held until the next message of the same read. When that is the response's end (the
     * whole body, or none, arrived in one read: the common case), the two go on as one FullHttpResponse, which the
     * client side encodes and writes as one message instead of two (issue #8). Anything else, or the end of the
     * read, sends the head on alone; nothing is flushed in between either way, so the client sees the same bytes.
     */
    private HttpResponse head;

    BackendHandler(BackendPool pool) {
        this.pool = pool;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (owner == null) {
            // A backend must not speak unasked; the connection is no longer in a known state.
            ReferenceCountUtil.release(msg);
            ctx.close();
            return;
        }
        if (msg instanceof DecoderResultProvider provider && provider.decoderResult().isFailure()) {
            // A head still held never reached the client, so the failure can still be answered with a status.
            head = null;
            ReferenceCountUtil.release(msg);
            owner.backendAnsweredInvalidly(provider.decoderResult().cause());
            ctx.close();
            return;
        }
        if (head != null) {
            HttpResponse held = head;
            head = null;
            if (msg instanceof LastHttpContent last) {
                owner.backendRead(new DefaultFullHttpResponse(held.protocolVersion(), held.status(), last.content(),
                        held.headers(), last.trailingHeaders()));
                return;
            }
            owner.backendRead(held);
            if (owner == null) {
                // the head ended the exchange (a refused 101, say): the rest has no one to go to
                ReferenceCountUtil.release(msg);
                return;
            }
        }
        if (msg instanceof HttpResponse response && !(msg instanceof HttpContent)
                && response.status().codeClass() != HttpStatusClass.INFORMATIONAL) {
            head = response;
            return;
        }
        owner.backendRead(msg);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (head != null) {
            HttpResponse held = head;
            head = null;
            if (owner != null) {
                owner.backendRead(held);
            }
        }
        if (owner != null) {
            owner.backendReadComplete();
        }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (owner != null && ctx.channel().isWritable()) {
            owner.backendWritable();
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        head = null; // a response cut off after its head: the owner answers 502 while nothing was sent
        if (owner != null) {
            owner.backendFailed(null, "backend closed the connection");
        } else {
            pool.remove(ctx.channel());
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (owner != null) {
            owner.backendFailed(cause, "i/o error");
        }
        ctx.close();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof SslCloseCompletionEvent closure && closure.isSuccess()) {
            // The backend ended its TLS (close_notify) and will send nothing more here, though its TCP connection
            // may stay open while it waits for ours: closed like a connection it closed, not left in the pool for a
            // request that would get no answer. A body delimited by the close ends here (BackendResponseDecoder).
            ctx.close();
        } else if (evt instanceof IdleStateEvent) {
            if (owner == null) {
                ctx.close();
            } else {
                owner.backendIdle(); // a tunnel's: a leased exchange has its own response and body timers
            }
        }
    }
}
