package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOutboundBuffer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.FileRegion;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The backend connection of a WebSocket tunnel that ended: it closes once what was relayed to it is written, for as
 * long as the backend keeps taking it. The {@link IdleTimeoutHandler} put back before this handler finds it idle once
 * nothing has left its queue for the listener's idle timeout, as nginx's {@code proxy_send_timeout} bounds the time
 * between two writes and not the whole: then the connection is cut, and when bytes the client sent are cut with it
 * that is logged and counted. Without a bound, a backend that reads nothing more would keep the connection, and the
 * queue for it, until the process stops. (A backend that stopped taking them while the tunnel was open is
 * {@linkplain #cut cut} when the tunnel is found idle, without a second timeout.)
 *
 * <p>What the backend sends meanwhile has no one to go to, and is dropped: were it passed on, the connection's
 * {@link BackendHandler}, which owns nothing any more, would close it as a backend speaking unasked, and cut what is
 * still queued. No read is asked for after the one that may be pending. Event-loop confined.
 */
final class TunnelBackendDrain extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(TunnelBackendDrain.class);

    private final Duration idleTimeout;
    private final String backend;
    private final String endpoint;
    private final ProxyMetrics metrics;
    /** All the tunnel relayed is written: what may still be queued is the TLS close_notify, no byte of the client's. */
    private boolean relayedWritten;

    private TunnelBackendDrain(Duration idleTimeout, String backend, String endpoint, ProxyMetrics metrics) {
        this.idleTimeout = idleTimeout;
        this.backend = backend;
        this.endpoint = endpoint;
        this.metrics = metrics;
    }

    /**
     * Closes a tunnel's backend connection once what was relayed to it is written, or once it stops taking it for
     * {@code idleTimeout}. Its relay handler must own nothing any more. Called on the connection's event loop.
     */
    static void closeWhenWritten(Channel channel, Duration idleTimeout, String backend, String endpoint,
            ProxyMetrics metrics) {
        if (!channel.isActive()) {
            channel.close(); // the backend's side is what ended the tunnel: nothing is left to wait for
            return;
        }
        ChannelPipeline pipeline = channel.pipeline();
        // Where it stood before the tunnel: after TLS, so a cut can start below it (see cut). A new one: the tunnel's
        // judged both connections together, and the pooled connection's has the backend's timeout (the tunnel ended
        // while it was opening).
        IdleTimeoutHandler idle = new IdleTimeoutHandler(idleTimeout);
        if (pipeline.get("idle") != null) {
            pipeline.replace("idle", "idle", idle);
        } else {
            pipeline.addBefore("relay", "idle", idle);
        }
        TunnelBackendDrain drain = new TunnelBackendDrain(idleTimeout, backend, endpoint, metrics);
        pipeline.addAfter("idle", "drain", drain);
        channel.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener((ChannelFutureListener) written -> {
            drain.relayedWritten = written.isSuccess();
            channel.close();
        });
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        ReferenceCountUtil.release(msg);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        // nothing to relay, and no next read to ask for
    }

    /**
     * Cuts a tunnel's backend connection that took nothing of what waits for it for {@code idleTimeout}, the tunnel
     * still open: what is queued is the client's. Its relay handler must own nothing any more. Called on the
     * connection's event loop.
     */
    static void cut(Channel channel, Duration idleTimeout, String backend, String endpoint, ProxyMetrics metrics) {
        cut(channel, true, idleTimeout, backend, endpoint, metrics);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (!(evt instanceof IdleStateEvent)) {
            ctx.fireUserEventTriggered(evt);
            return;
        }
        cut(ctx.channel(), !relayedWritten, idleTimeout, backend, endpoint, metrics);
    }

    /** @param clientBytesQueued what is queued may hold bytes the client sent, not only the TLS close_notify */
    private static void cut(Channel channel, boolean clientBytesQueued, Duration idleTimeout, String backend,
            String endpoint, ProxyMetrics metrics) {
        long queued = queuedBytes(channel);
        if (queued > 0 && clientBytesQueued) {
            log.warn("event=tunnel_backend_cut backend={} endpoint={} queued_bytes={} cause=\"nothing written for {}\"",
                    backend, endpoint, queued, Durations.format(idleTimeout));
            metrics.backendTunnelCut(backend);
        }
        // Below TLS: a close_notify would tell the backend that the stream ended whole, and it would wait behind the
        // bytes that are not moving anyway. nginx does not send one on a connection in error either.
        ChannelHandlerContext tls = channel.pipeline().context(SslHandler.class);
        if (tls != null) {
            tls.close();
        } else {
            channel.close();
        }
    }

    /** The bytes still in the socket's queue: TLS records on a TLS connection, without Netty's per-message overhead. */
    private static long queuedBytes(Channel channel) {
        ChannelOutboundBuffer queue = channel.unsafe().outboundBuffer();
        if (queue == null) {
            return 0;
        }
        long[] bytes = {0};
        try {
            queue.forEachFlushedMessage(msg -> {
                if (msg instanceof ByteBuf buf) {
                    bytes[0] += buf.readableBytes();
                } else if (msg instanceof FileRegion region) {
                    bytes[0] += region.count() - region.transferred();
                }
                return true;
            });
        } catch (Exception cannotHappen) {
            throw new IllegalStateException(cannotHappen);
        }
        return bytes[0];
    }
}
