package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
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
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A WebSocket tunnel whose client sends its last bytes all at once and ends, while its backend takes them slowly but
 * steadily: longer in all than the listener's idle timeout. The backend's connection stays until it has taken every
 * one of them (the idle timeout bounds the time between two writes, as nginx's proxy_send_timeout, not the whole),
 * and nothing is logged or counted as cut.
 *
 * <p>The backend announces a small maximum segment and receive buffer, as {@link dev.mtlsproxy.core.testing.SlowLink}
 * does towards the proxy: on loopback the proxy's kernel would otherwise take megabytes at once, and nothing would
 * wait in the proxy. As it is, the proxy's kernel holds some 60 KiB for the backend, and takes more in steps of some
 * 30 KiB as the backend reads; the rest of what the client sent waits in the proxy. Linux only (epoll).
 */
class ClosedTunnelSlowBackendTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(1);
    /**
     * The backend takes this much every READ_EVERY: 64 KiB a second, two of the kernel's steps in an idle timeout,
     * and half of what waits in the proxy when the tunnel ends.
     */
    static final int READ_BYTES = 1024;
    static final Duration READ_EVERY = Duration.ofMillis(16);
    /** Some three times what the proxy's kernel holds for the backend. */
    static final int SENT = 192 * 1024;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(TunnelBackendDrain.class);

    @TempDir
    static Path dir;
    static TestPki pki;
    static SlowReadingBackend backend;
    static RunningProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = new SlowReadingBackend();
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("slow", "http://127.0.0.1:" + backend.address().getPort())
                .route("ws", "/ws", "slow", "orders")
                .idleTimeout(IDLE_TIMEOUT)
                .start();
    }

    @AfterAll
    static void stop() {
        if (proxy != null) {
            proxy.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    @Test
    void aBackendStillTakingTheLastBytesOfAClosedTunnelGetsThemAll() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            byte[] bytes = new byte[SENT];
            for (int i = 0; i < SENT; i++) {
                bytes[i] = SlowReadingBackend.expected(i);
            }
            // Sent with the upgrade request, before its answer, and ended at once: the proxy reads it all as one,
            // right after the switch, and the tunnel ends there with most of it waiting for the backend.
            client.send(ProtocolSwitchTest.UPGRADE);
            client.output().write(bytes);
            client.output().flush();
            client.endOutput();
            assertThat(client.readResponse().status()).isEqualTo(101);
            assertThat(client.closedWithin(10_000)).as("the tunnel ended").isTrue();
        }

        long taking = (long) SENT * READ_EVERY.toMillis() / READ_BYTES;
        assertThat(Duration.ofMillis(taking)).as("the backend takes longer than one idle timeout").isGreaterThan(
                IDLE_TIMEOUT.multipliedBy(3));
        Received received = backend.received.get(taking * 3, TimeUnit.MILLISECONDS);
        assertThat(received.firstMismatch()).as("the first byte not as sent").isEqualTo(-1);
        assertThat(received.bytes()).as("bytes the backend got before the proxy closed its connection; logged: %s",
                log.lines()).isEqualTo(SENT);
        assertThat(log.lines()).noneMatch(line -> line.contains("event=tunnel_backend_cut"));
        assertThat(proxy.count("mtls.proxy.backend.tunnel.cuts", "backend", "slow")).isZero();
    }

    /** What the backend got of the tunnel by the time the proxy closed the connection. */
    record Received(long bytes, long firstMismatch) {
    }

    /**
     * Answers one WebSocket upgrade with 101, then takes {@link #READ_BYTES} of the tunnel every {@link #READ_EVERY}
     * and checks them against what the client sends, until the proxy closes the connection.
     */
    static final class SlowReadingBackend implements AutoCloseable {

        /** setsockopt(IPPROTO_TCP, TCP_MAXSEG): on the listening socket, the segment size its connections announce. */
        private static final IntegerUnixChannelOption TCP_MAXSEG = new IntegerUnixChannelOption("TCP_MAXSEG", 6, 2);

        final CompletableFuture<Received> received = new CompletableFuture<>();
        private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        private final Channel listener;

        SlowReadingBackend() throws InterruptedException {
            listener = new ServerBootstrap()
                    .group(group)
                    .channel(EpollServerSocketChannel.class)
                    .option(TCP_MAXSEG, 1400)
                    .option(ChannelOption.SO_RCVBUF, 2 * 1024)
                    .childOption(ChannelOption.AUTO_READ, false)
                    .childOption(ChannelOption.RECVBUF_ALLOCATOR,
                            new FixedRecvByteBufAllocator(READ_BYTES).maxMessagesPerRead(1))
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

        static byte expected(long offset) {
            return (byte) (offset % 251);
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
                    byte[] piece = ByteBufUtil.getBytes(in);
                    for (byte b : piece) {
                        if (firstMismatch < 0 && b != expected(bytes)) {
                            firstMismatch = bytes;
                        }
                        bytes++;
                    }
                } finally {
                    in.release();
                }
            }

            @Override
            public void channelReadComplete(ChannelHandlerContext ctx) {
                ctx.executor().schedule(() -> {
                    ctx.read();
                }, READ_EVERY.toNanos(), TimeUnit.NANOSECONDS);
            }

            @Override
            public void channelInactive(ChannelHandlerContext ctx) {
                received.complete(new Received(bytes, firstMismatch));
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
}
