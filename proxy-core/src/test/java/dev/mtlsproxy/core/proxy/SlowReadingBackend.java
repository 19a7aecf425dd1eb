package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.ISO_8859_1;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.FixedRecvByteBufAllocator;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.unix.IntegerUnixChannelOption;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A WebSocket backend that reads slowly but steadily: it answers one upgrade with 101, then takes a fixed number of
 * the tunnel's bytes at a fixed interval and checks them against {@link #expected}, until the proxy closes the
 * connection. Once it has taken {@code acknowledgeAt} bytes it sends {@link #ACKNOWLEDGED} back through the tunnel.
 *
 * <p>It announces a small maximum segment and receive buffer, as {@link dev.mtlsproxy.core.testing.SlowLink} does
 * towards the proxy: on loopback the proxy's kernel would otherwise take megabytes at once, and nothing would wait in
 * the proxy. As it is, with 1400-byte segments the proxy's kernel holds some 60 KiB for the backend and takes more in
 * steps of some 30 KiB as the backend reads; the rest waits in the proxy. Linux only (epoll).
 */
final class SlowReadingBackend implements AutoCloseable {

    static final String ACKNOWLEDGED = "all taken\n";

    /** setsockopt(IPPROTO_TCP, TCP_MAXSEG): on the listening socket, the segment size its connections announce. */
    private static final IntegerUnixChannelOption TCP_MAXSEG = new IntegerUnixChannelOption("TCP_MAXSEG", 6, 2);

    /** What each connection got of its tunnel by the time the proxy closed it, in the order they closed. */
    final BlockingQueue<Received> closed = new LinkedBlockingQueue<>();
    private final Duration readEvery;
    private final long acknowledgeAt;
    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    private final Channel listener;

    /**
     * @param segmentSize the maximum segment its connections announce: the smaller, the less the proxy's kernel holds
     *     for it (its send buffer is counted in segments)
     * @param readBytes taken every {@code readEvery}, at most
     * @param acknowledgeAt after this many bytes of a tunnel, {@link #ACKNOWLEDGED} is sent back
     */
    SlowReadingBackend(int segmentSize, int readBytes, Duration readEvery, long acknowledgeAt)
            throws InterruptedException {
        this.readEvery = readEvery;
        this.acknowledgeAt = acknowledgeAt;
        listener = new ServerBootstrap()
                .group(group)
                .channel(EpollServerSocketChannel.class)
                .option(TCP_MAXSEG, segmentSize)
                .option(ChannelOption.SO_RCVBUF, 2 * 1024)
                .childOption(ChannelOption.AUTO_READ, false)
                .childOption(ChannelOption.RECVBUF_ALLOCATOR,
                        new FixedRecvByteBufAllocator(readBytes).maxMessagesPerRead(1))
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        ch.pipeline().addLast(new Tunnel());
                    }
                })
                .bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
    }

    InetSocketAddress address() {
        return (InetSocketAddress) listener.localAddress();
    }

    /** The byte a client sends at {@code offset} of the tunnel. */
    static byte expected(long offset) {
        return (byte) (offset % 251);
    }

    /** {@code length} bytes as the backend expects them. */
    static byte[] expectedBytes(int length) {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++) {
            bytes[i] = expected(i);
        }
        return bytes;
    }

    /** What a backend connection got of its tunnel by the time the proxy closed it. */
    record Received(long bytes, long firstMismatch) {
    }

    /** Event-loop confined. */
    private final class Tunnel extends ChannelInboundHandlerAdapter {
        private final StringBuilder head = new StringBuilder();
        private boolean switched;
        private long bytes;
        private long firstMismatch = -1;

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            ctx.read();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf in = (ByteBuf) msg;
            try {
                while (!switched && in.isReadable()) {
                    head.append((char) in.readByte());
                    if (head.toString().endsWith("\r\n\r\n")) {
                        switched = true;
                        ctx.writeAndFlush(Unpooled.copiedBuffer(ProtocolSwitchTest.SWITCHED, ISO_8859_1));
                    }
                }
                long before = bytes;
                for (byte b : ByteBufUtil.getBytes(in)) {
                    if (firstMismatch < 0 && b != expected(bytes)) {
                        firstMismatch = bytes;
                    }
                    bytes++;
                }
                if (before < acknowledgeAt && bytes >= acknowledgeAt) {
                    ctx.writeAndFlush(Unpooled.copiedBuffer(ACKNOWLEDGED, ISO_8859_1));
                }
            } finally {
                in.release();
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.executor().schedule(() -> {
                ctx.read();
            }, readEvery.toNanos(), TimeUnit.NANOSECONDS);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            closed.add(new Received(bytes, firstMismatch));
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // a reset: what arrived before it is what the backend got
        }
    }

    @Override
    public void close() {
        listener.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
