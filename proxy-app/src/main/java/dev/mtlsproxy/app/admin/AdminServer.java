package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.core.proxy.CannotBindException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * The admin listener: plain HTTP on its own single thread, so a slow scrape never runs on (or waits for) the
 * proxy's event loops. Pipeline: idle (closes a connection silent for {@link #IDLE_TIMEOUT}), http (codec),
 * aggregate (admin requests are tiny; 8 KiB cap), endpoints.
 */
public final class AdminServer implements AutoCloseable {

    private final EventLoopGroup group;
    private final Channel channel;

    private AdminServer(EventLoopGroup group, Channel channel) {
        this.group = group;
        this.channel = channel;
    }

    /**
     * A connection that sends nothing for this long is closed: idle keep-alive connections would otherwise pile up
     * without limit on descriptors the mTLS listeners share. Longer than any scrape interval worth having.
     */
    static final Duration IDLE_TIMEOUT = Duration.ofMinutes(2);

    public static AdminServer start(HostPort address, AdminEndpoints endpoints)
            throws InterruptedException, CannotBindException {
        return start(address, endpoints, IDLE_TIMEOUT);
    }

    static AdminServer start(HostPort address, AdminEndpoints endpoints, Duration idleTimeout)
            throws InterruptedException, CannotBindException {
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        try {
            ChannelFuture bind = new ServerBootstrap()
                    .group(group)
                    .channel(NioServerSocketChannel.class)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline()
                                    .addLast("idle", new IdleStateHandler(idleTimeout.toMillis(), 0, 0,
                                            TimeUnit.MILLISECONDS))
                                    .addLast("close-idle", CLOSE_IDLE)
                                    .addLast("http", new HttpServerCodec())
                                    .addLast("aggregate", new HttpObjectAggregator(8 * 1024))
                                    .addLast("endpoints", endpoints);
                        }
                    })
                    .bind(address.host(), address.port()).await();
            if (!bind.isSuccess()) {
                throw new CannotBindException("admin.address", address, bind.cause());
            }
            return new AdminServer(group, bind.channel());
        } catch (InterruptedException | CannotBindException | RuntimeException e) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
    }

    private static final ChannelHandler CLOSE_IDLE = new CloseIdle();

    @Sharable
    private static final class CloseIdle extends ChannelInboundHandlerAdapter {
        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof IdleStateEvent) {
                ctx.close();
            } else {
                ctx.fireUserEventTriggered(evt);
            }
        }
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) channel.localAddress();
    }

    @Override
    public void close() {
        channel.close().syncUninterruptibly();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
