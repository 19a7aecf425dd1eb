package dev.mtlsproxy.core.testing;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.FixedRecvByteBufAllocator;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.unix.IntegerUnixChannelOption;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * A TCP hop between a test's client and the proxy that stands for a slow network path, where a client can stop
 * reading for a while. On loopback the kernel gives a socket megabytes of send buffer (its maximum segment is 64 KiB),
 * so whatever the proxy writes is in the kernel at once and nothing waits in the proxy. Towards the proxy this hop
 * announces a 536-byte maximum segment, as a WAN path might, and a small receive buffer: the proxy's kernel then
 * keeps a send buffer of about a hundred KiB, and what does not fit waits in the proxy, as it does for a real slow
 * client. While {@linkplain #pause() paused}, the hop reads nothing from the proxy; once {@linkplain #pace paced}, it
 * reads from it slowly but steadily. Linux only (epoll).
 */
public final class SlowLink implements AutoCloseable {

    /** setsockopt(IPPROTO_TCP, TCP_MAXSEG): the maximum segment size this side announces in its SYN. */
    private static final IntegerUnixChannelOption TCP_MAXSEG = new IntegerUnixChannelOption("TCP_MAXSEG", 6, 2);

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    private final InetSocketAddress target;
    private final Channel listener;
    private final ChannelGroup towardsProxy = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    private volatile boolean paused;
    /** Read from the proxy at most one message of a fixed size this often; null: as fast as the clients take it. */
    private volatile Duration pacedEvery;
    private volatile int pacedBytes;

    private SlowLink(InetSocketAddress target) throws InterruptedException {
        this.target = target;
        this.listener = new ServerBootstrap()
                .group(group)
                .channel(EpollServerSocketChannel.class)
                .childOption(ChannelOption.AUTO_READ, false) // until the hop to the proxy is up
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel client) {
                        connect(client);
                    }
                })
                .bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
    }

    /** A hop to {@code target}; connect the client to {@link #address()}. */
    public static SlowLink to(InetSocketAddress target) throws InterruptedException {
        return new SlowLink(target);
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) listener.localAddress();
    }

    /** A plain TCP connection to the proxy through this hop, for {@link MtlsClient#connect(Socket, javax.net.ssl.SSLContext)}. */
    public Socket open() throws java.io.IOException {
        return new Socket(address().getAddress(), address().getPort());
    }

    /** Stops reading from the proxy, on every connection: what it sends waits in its kernel, then in the proxy. */
    public void pause() {
        paused = true;
        group.next().submit(() -> towardsProxy.forEach(c -> c.config().setAutoRead(false))).syncUninterruptibly();
    }

    /** Reads from the proxy again, as fast as the clients take it. */
    public void resume() {
        paused = false;
        group.next().execute(() -> towardsProxy.forEach(c -> c.config().setAutoRead(true)));
    }

    /**
     * From now on reads at most {@code bytes} from the proxy every {@code every}, on every connection: a client that
     * reads slowly but steadily, whatever its own socket would take.
     */
    public void pace(int bytes, Duration every) {
        pacedBytes = bytes;
        pacedEvery = every;
        group.next().submit(() -> towardsProxy.forEach(SlowLink.this::startPacing)).syncUninterruptibly();
    }

    private void startPacing(Channel towardsProxy) {
        towardsProxy.config().setRecvByteBufAllocator(new FixedRecvByteBufAllocator(pacedBytes).maxMessagesPerRead(1));
        towardsProxy.config().setAutoRead(false);
        towardsProxy.read();
    }

    private void connect(Channel client) {
        new Bootstrap()
                .group(client.eventLoop())
                .channel(EpollSocketChannel.class)
                .option(TCP_MAXSEG, 536)
                .option(ChannelOption.SO_RCVBUF, 8 * 1024)
                .option(ChannelOption.AUTO_READ, !paused)
                .handler(new Relay(client, true))
                .connect(target)
                .addListener((ChannelFutureListener) connected -> {
                    if (!connected.isSuccess()) {
                        client.close();
                        return;
                    }
                    towardsProxy.add(connected.channel());
                    if (paused) {
                        connected.channel().config().setAutoRead(false);
                    } else if (pacedEvery != null) {
                        startPacing(connected.channel());
                    }
                    client.pipeline().addLast(new Relay(connected.channel(), false));
                    client.config().setAutoRead(true);
                });
    }

    /** Passes what one side reads to the other; a side that ends closes the other once what it sent is written. */
    private final class Relay extends ChannelInboundHandlerAdapter {
        private final Channel other;
        private final boolean fromProxy;

        Relay(Channel other, boolean fromProxy) {
            this.other = other;
            this.fromProxy = fromProxy;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            other.writeAndFlush(msg);
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            Duration every = pacedEvery;
            if (fromProxy && every != null && !paused) {
                ctx.executor().schedule(() -> {
                    ctx.read();
                }, every.toNanos(), TimeUnit.NANOSECONDS);
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            other.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // a reset: the other side learns of it as a close, after what was relayed
        }
    }

    @Override
    public void close() {
        listener.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
