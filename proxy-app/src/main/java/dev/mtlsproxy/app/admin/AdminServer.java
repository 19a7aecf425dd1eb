package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.core.proxy.CannotBindException;
import dev.mtlsproxy.core.proxy.ConnectionLimit;
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
import io.netty.channel.ServerChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * The admin listener: plain HTTP on its own single thread, so a slow scrape never runs on (or waits for) the
 * proxy's event loops. At most {@link Limits#maxConnections()} connections are open at once. When they are, a new
 * one takes the slot of the connection idle longest between requests ({@link IdleConnections}); when none is idle,
 * it is closed as soon as it is accepted. Pipeline, in order:
 * <pre>
 *   busy             its first bytes take the connection off the idle list
 *   request-timeout  starts the clock when a request begins (connection open, first bytes after the last request)
 *   idle             closes a connection silent for {@link Limits#idleTimeout()}
 *   http             codec
 *   aggregate        admin requests are tiny; 8 KiB cap, a body over it passed on as refused
 *   request-received stops the clock: the whole request arrived in time
 *   exchanges        back on the idle list once every request received is answered
 *   endpoints
 * </pre>
 */
public final class AdminServer implements AutoCloseable {

    private final EventLoopGroup group;
    private final Channel channel;

    private AdminServer(EventLoopGroup group, Channel channel) {
        this.group = group;
        this.channel = channel;
    }

    /**
     * The admin listener's limits; not configurable: the values suit any probe and scrape set-up.
     *
     * @param idleTimeout     a connection that sends nothing for this long between requests is closed: idle
     *                        keep-alive connections would otherwise pile up without limit on descriptors the mTLS
     *                        listeners share. Longer than any scrape interval worth having.
     * @param requestTimeout  the time to send one whole request, counted from the connection opening or from the
     *                        first bytes of the request; past it the connection is closed (nginx's
     *                        client_header_timeout is 60 s for any client on the Internet; a probe or a scraper
     *                        on the pod network sends its few hundred bytes in one go)
     * @param maxConnections  connections open at once; the kubelet opens one per probe and closes it, a Prometheus
     *                        keeps one per target, so a pod needs a handful, and 64 never gets in their way while
     *                        bounding what anything else on the pod network can hold open. When all are open, the
     *                        one idle longest between requests is closed for a new one ({@link IdleConnections})
     */
    record Limits(Duration idleTimeout, Duration requestTimeout, int maxConnections) {
        static final Limits DEFAULT = new Limits(Duration.ofMinutes(2), Duration.ofSeconds(10), 64);
    }

    /**
     * What the admin listener counts, as callbacks: the caller wires them to its metrics.
     *
     * @param refused          a connection closed at accept because {@link Limits#maxConnections()} were open
     * @param requestTimedOut  a connection closed because a request did not arrive whole within
     *                         {@link Limits#requestTimeout()}
     * @param evicted          a connection idle between requests closed to admit a new one, because
     *                         {@link Limits#maxConnections()} were open ({@link IdleConnections})
     */
    public record Counters(Runnable refused, Runnable requestTimedOut, Runnable evicted) {
    }

    public static AdminServer start(HostPort address, AdminEndpoints endpoints, Counters counters)
            throws InterruptedException, CannotBindException {
        return start(address, endpoints, Limits.DEFAULT, counters);
    }

    static AdminServer start(HostPort address, AdminEndpoints endpoints, Limits limits, Counters counters)
            throws InterruptedException, CannotBindException {
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        ConnectionLimit connections = new ConnectionLimit("admin", limits::maxConnections, counters.refused());
        IdleConnections idleConnections = new IdleConnections(counters.evicted());
        try {
            ChannelFuture bind = new ServerBootstrap()
                    .group(group)
                    .channel(NioServerSocketChannel.class)
                    // Every slot taken: the connection idle longest makes room first, so that a scrape or a
                    // probe is not refused for two minutes by connections doing nothing; then the limit judges.
                    .handler(new ChannelInitializer<ServerChannel>() {
                        @Override
                        protected void initChannel(ServerChannel listening) {
                            listening.pipeline().addLast("make-room",
                                    idleConnections.makeRoom(connections, limits::maxConnections));
                            listening.pipeline().addLast("limit", connections);
                        }
                    })
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            AdminHttpCodec http = new AdminHttpCodec();
                            IdleConnections.Tracker tracker = idleConnections.track(ch, http::requestUnfinished);
                            RequestTimeout requestTimeout = new RequestTimeout(limits.requestTimeout(),
                                    counters.requestTimedOut(), http::requestUnfinished);
                            ch.pipeline()
                                    .addLast("busy", tracker.bytes())
                                    .addLast("request-timeout", requestTimeout.bytes())
                                    .addLast("idle", new IdleStateHandler(limits.idleTimeout().toMillis(), 0, 0,
                                            TimeUnit.MILLISECONDS))
                                    .addLast("close-idle", CLOSE_IDLE)
                                    .addLast("http", http)
                                    .addLast("aggregate", new RequestAggregator(8 * 1024))
                                    .addLast("request-received", requestTimeout.requests())
                                    .addLast("exchanges", tracker.exchanges())
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
