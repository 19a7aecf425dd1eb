package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.backend.BackendPool;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderResultProvider;
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
            ReferenceCountUtil.release(msg);
            owner.backendFailed(provider.decoderResult().cause(), "invalid response");
            ctx.close();
            return;
        }
        owner.backendRead(msg);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
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
        if (evt instanceof IdleStateEvent && owner == null) {
            ctx.close();
        }
    }
}
