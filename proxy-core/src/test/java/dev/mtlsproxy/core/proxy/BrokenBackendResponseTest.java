package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.ssl.SslCloseCompletionEvent;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.pkitesting.X509Bundle;
import io.netty.util.ReferenceCountUtil;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A backend whose response turns out malformed after its head. While nothing of the response has reached the
 * client the proxy can still answer 502; once the head and part of the body have gone out, the only honest signal
 * left is a closed connection. Either way the client never receives something that looks like a complete response.
 */
class BrokenBackendResponseTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String CHUNKED_HEAD = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

    @RegisterExtension
    final LogCapture log = LogCapture.of(ForwardingHandler.class);
    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    /**
     * A proxy in front of a backend that reads one request head per connection, then writes each part of its
     * script, a pause between parts so that each arrives in a read of its own, and closes.
     */
    private MtlsClient clientOfScripted(String... parts) throws Exception {
        return clientOf(fixture.closedAfterTest(SocketBackend.start("scripted-backend", connection -> {
            if (SocketBackend.readHead(connection.getInputStream()) == null) {
                return;
            }
            OutputStream out = connection.getOutputStream();
            for (String part : parts) {
                out.write(part.getBytes(US_ASCII));
                out.flush();
                Thread.sleep(200);
            }
        })));
    }

    private MtlsClient clientOf(SocketBackend backend) throws Exception {
        fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(List.of(URI.create(backend.url())), null))
                .route("all", "/", "shop", "orders"));
        return fixture.connect(ORDERS);
    }

    @Test
    void aBadChunkArrivingWithTheHeadIsAnsweredWith502() throws Exception {
        try (MtlsClient client = clientOfScripted(CHUNKED_HEAD + "zz\r\nhello\r\n0\r\n\r\n")) {
            assertThat(client.get("/orders").status()).isEqualTo(502);
        }
        assertThat(log.await("backend=shop", "status=502")).contains("cause=\"invalid response: invalid chunk size\"");
    }

    /**
     * The backend writes its head and a body gone bad in one write, so the proxy reads them together: when it finds
     * the fault, nothing of the response has been written to the client, so it answers 502 (as for a bad head) and
     * keeps the client connection; the backend connection, in an unknown state, is closed instead of pooled.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            a bad chunk size first             | zz\\r\\nhello\\r\\n0\\r\\n\\r\\n         | invalid chunk size
            a bad chunk size after a chunk     | 5\\r\\nhello\\r\\nzz\\r\\n                  | invalid chunk size
            a chunk longer than its size       | 5\\r\\nhello!\\r\\n0\\r\\n\\r\\n          | chunk data not followed by CRLF
            a chunk size line with a bare LF   | 5\\r\\nhello\\r\\n5\\nworld\\r\\n0\\r\\n\\r\\n | chunk size line ending in a bare LF
            a chunk size of 16 hex digits      | 5\\r\\nhello\\r\\n10000000000000000\\r\\n   | chunk size too large
            a control byte in an extension     | 5\\r\\nhello\\r\\n5;a\\u0001\\r\\nworld\\r\\n | control character in a chunk extension
            a bad trailer after the last chunk | 5\\r\\nhello\\r\\n0\\r\\nX-A : 1\\r\\n\\r\\n  | whitespace between a field name and its colon
            """)
    void aBodyThatGoesBadInTheReadOfItsHeadIsAnsweredWith502(String what, String body, String reason)
            throws Exception {
        String broken = CHUNKED_HEAD + body.replace("\\r", "\r").replace("\\n", "\n").replace("\\u0001", "\u0001");
        CountDownLatch brokenConnectionClosed = new CountDownLatch(1);
        SocketBackend backend = fixture.closedAfterTest(SocketBackend.start("one-write-backend", connection -> {
            InputStream in = connection.getInputStream();
            OutputStream out = connection.getOutputStream();
            boolean answeredBroken = false;
            String head;
            while ((head = SocketBackend.readHead(in)) != null) {
                answeredBroken = head.startsWith("GET /broken ");
                out.write((answeredBroken ? broken : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .getBytes(US_ASCII));
                out.flush();
            }
            if (answeredBroken) {
                brokenConnectionClosed.countDown();
            }
        }));

        try (MtlsClient client = clientOf(backend)) {
            MtlsClient.Response response = client.get("/broken");
            assertThat(response.status()).isEqualTo(502);
            assertThat(response.bodyText()).doesNotContain("hello");
            assertThat(response.header("connection")).as("the client connection stays open").isEqualTo("keep-alive");

            assertThat(brokenConnectionClosed.await(5, TimeUnit.SECONDS)).as("the backend connection was closed")
                    .isTrue();
            MtlsClient.Response next = client.get("/after");
            assertThat(next.status()).isEqualTo(200);
            assertThat(next.bodyText()).isEqualTo("ok");
        }
        assertThat(backend.connectionsAccepted()).as("the next request went on a new backend connection")
                .isEqualTo(2);
        assertThat(log.await("backend=shop", "status=502")).contains("cause=\"invalid response: " + reason + "\"");
    }

    @Test
    void aBadChunkAfterPartOfTheBodyWentOutClosesTheClientConnection() throws Exception {
        try (MtlsClient client = clientOfScripted(CHUNKED_HEAD + "5\r\nhello\r\n", "zz\r\n")) {
            client.send("GET /orders HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Throwable cut = catchThrowable(client::readResponse);
            assertThat(cut).as("a truncated response, never a complete one").isInstanceOf(IOException.class);
        }
        assertThat(log.await("backend=shop", "after=response_started")).contains("cause=\"invalid response: invalid chunk size\"");
    }

    /**
     * An HTTP/1.0 client gets the body delimited by the close (README), and RFC 9112 9.8 has such a body complete only
     * once a TLS closure alert arrived: a body cut short must end without one, or the client takes the part for the
     * whole. JSSE reports both ends alike (which is why HostileBackendResponseFuzzTest cannot check this), so this
     * client is Netty's, which tells them apart.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            whole body, closed cleanly | 0\\r\\n\\r\\n | true
            body cut by a bad chunk    | zz\\r\\n      | false
            """)
    void aCloseDelimitedBodyEndsWithATlsClosureOnlyWhenItIsWhole(String what, String rest, boolean closeNotify)
            throws Exception {
        clientOfScripted(CHUNKED_HEAD + "5\r\nhello\r\n", rest.replace("\\r\\n", "\r\n")).close();

        Ending ending = readUntilClosed("GET /orders HTTP/1.0\r\nHost: localhost\r\n\r\n");

        assertThat(ending.received()).startsWith("HTTP/1.1 200 ").doesNotContainIgnoringCase("content-length")
                .endsWith("\r\n\r\nhello");
        assertThat(ending.closeNotify()).as("the connection ended with close_notify").isEqualTo(closeNotify);
    }

    /** What a client read until the proxy closed the connection, and whether the close came with close_notify. */
    record Ending(String received, boolean closeNotify) {
    }

    private Ending readUntilClosed(String request) throws Exception {
        X509Bundle certificate = fixture.pki().client(ORDERS);
        SslContext context = SslContextBuilder.forClient()
                .keyManager(certificate.getKeyPair().getPrivate(), certificate.getCertificatePath())
                .trustManager(fixture.pki().root().getCertificate())
                .build();
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        ByteArrayOutputStream received = new ByteArrayOutputStream();
        AtomicBoolean closeNotify = new AtomicBoolean();
        try {
            Channel channel = new Bootstrap().group(group).channel(NioSocketChannel.class)
                    .handler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(context.newHandler(ch.alloc(), "localhost",
                                    fixture.proxy().address().getPort()), new ChannelInboundHandlerAdapter() {
                                        @Override
                                        public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                            ByteBuf bytes = (ByteBuf) msg;
                                            synchronized (received) {
                                                received.writeBytes(ByteBufUtil.getBytes(bytes));
                                            }
                                            bytes.release();
                                        }

                                        @Override
                                        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
                                            if (evt instanceof SslCloseCompletionEvent close && close.isSuccess()) {
                                                closeNotify.set(true);
                                            }
                                            ctx.fireUserEventTriggered(evt);
                                        }

                                        @Override
                                        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                            ctx.close();
                                        }
                                    });
                        }
                    })
                    .connect(fixture.proxy().address()).sync().channel();
            channel.pipeline().get(SslHandler.class).handshakeFuture().sync();
            channel.writeAndFlush(Unpooled.copiedBuffer(request, US_ASCII));
            assertThat(channel.closeFuture().await(10, TimeUnit.SECONDS)).as("the proxy closed the connection")
                    .isTrue();
            synchronized (received) {
                return new Ending(received.toString(US_ASCII), closeNotify.get());
            }
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
            ReferenceCountUtil.release(context);
        }
    }

    /** A response the client could frame differently from us is never relayed, in part or whole. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            length and chunks | Content-Length: 5\\r\\nTransfer-Encoding: chunked | both Content-Length and Transfer-Encoding
            two lengths       | Content-Length: 5\\r\\nContent-Length: 50          | more than one Content-Length
            a folded field    | X-A: 1\\r\\n\\tContent-Length: 50                  | folded field line (obs-fold)
            a bare LF         | X-A: 1\\nContent-Length: 50                         | line ending in a bare LF
            """)
    void aResponseHeadThatCouldBeReadTwoWaysIsAnsweredWith502(String what, String fields, String reason)
            throws Exception {
        String head = "HTTP/1.1 200 OK\r\n" + fields.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t")
                + "\r\n\r\n";
        try (MtlsClient client = clientOfScripted(head + "hello" + "x".repeat(45))) {
            MtlsClient.Response response = client.get("/orders");
            assertThat(response.status()).isEqualTo(502);
            assertThat(response.bodyText()).doesNotContain("hello");
        }
        assertThat(log.await("backend=shop", "status=502")).contains("cause=\"invalid response: " + reason + "\"");
    }
}
