package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.KeyExchangeGroup;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.ServerTlsConfig;
import dev.mtlsproxy.config.TlsVersion;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.ssl.OpenSslContextOption;
import io.netty.handler.ssl.ReferenceCountedOpenSslEngine;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import io.netty.internal.tcnative.SSL;
import io.netty.pkitesting.X509Bundle;
import io.netty.util.ReferenceCountUtil;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code groups:}, the key exchange groups, on both sides of the proxy: what a listener negotiates follows from its
 * list (hybrid post-quantum first by default) and shows in the access log; a backend is offered exactly its list.
 * The clients and backends here are BoringSSL, as modern TLS stacks are, so they can offer X25519MLKEM768.
 */
class KeyExchangeGroupsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();
    EventLoopGroup clients;

    @BeforeEach
    void startClients() {
        clients = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    }

    @AfterEach
    void stopClients() {
        clients.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private void startProxy(KeyExchangeGroup... groups) {
        RunningProxy.Builder builder = RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders-api", "/orders", "shop", "orders");
        if (groups.length > 0) {
            builder.groups(groups);
        }
        fixture.start(builder);
    }

    @Test
    void byDefaultAClientOfferingPostQuantumGetsIt() throws Exception {
        startProxy();

        Exchanged exchanged = request("/orders/1", "X25519MLKEM768", "X25519");

        assertThat(exchanged.clientSawGroup()).isEqualTo("X25519MLKEM768");
        assertThat(exchanged.status()).isEqualTo(200);
        assertThat(nextLogged().tlsGroup()).isEqualTo("X25519MLKEM768");
        assertThat(keyExchanges("X25519MLKEM768")).isEqualTo(1);
        assertThat(keyExchanges("X25519")).isZero();
    }

    @Test
    void byDefaultAClassicalClientIsServedWithX25519() throws Exception {
        startProxy();

        Exchanged exchanged = request("/orders/1", "X25519", "P-256");

        assertThat(exchanged.status()).isEqualTo(200);
        assertThat(nextLogged().tlsGroup()).isEqualTo("X25519");
        assertThat(keyExchanges("X25519")).isEqualTo(1);
        assertThat(keyExchanges("X25519MLKEM768")).isZero();
    }

    @Test
    void theListenersListDecidesEvenAgainstTheClientsPreference() throws Exception {
        startProxy(KeyExchangeGroup.P_256);

        Exchanged exchanged = request("/orders/1", "X25519MLKEM768", "X25519", "P-256");

        assertThat(exchanged.clientSawGroup()).isEqualTo("P-256");
        assertThat(exchanged.status()).isEqualTo(200);
        assertThat(nextLogged().tlsGroup()).isEqualTo("P-256");
    }

    @Test
    void p521IsNotOfferedByDefaultButWorksWhenListed() throws Exception {
        startProxy();
        assertThat(request("/orders/1", "P-521").handshakeFailure()).isNotNull();
        fixture.proxy().close();

        startProxy(KeyExchangeGroup.X25519, KeyExchangeGroup.P_521);
        Exchanged exchanged = request("/orders/1", "P-521");
        assertThat(exchanged.clientSawGroup()).isEqualTo("P-521");
        assertThat(exchanged.status()).isEqualTo(200);
    }

    @Test
    void aClientWithNoGroupInCommonIsRefusedAtTheHandshake() throws Exception {
        startProxy(KeyExchangeGroup.X25519_MLKEM768);

        Exchanged exchanged = request("/orders/1", "X25519", "P-256");

        assertThat(exchanged.status()).as("no HTTP exchange").isZero();
        assertThat(exchanged.handshakeFailure()).isNotNull();
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
        // Counted with the other "no common TLS parameters" refusals, not as other.
        await().atMost(Duration.ofSeconds(5)).until(() -> fixture.proxy().count("mtls.proxy.tls.handshakes", "result", "failure",
                "reason", HandshakeFailureReason.PROTOCOL_VERSION.label()) == 1);
    }

    @Test
    void aReloadChangesWhatNewConnectionsNegotiate() throws Exception {
        startProxy();
        assertThat(request("/orders/1", "X25519MLKEM768", "X25519").clientSawGroup()).isEqualTo("X25519MLKEM768");

        fixture.proxy().reload(config -> config.withListeners(config.listeners().stream().map(l -> {
            ServerTlsConfig tls = l.tls();
            return new ListenerConfig(l.name(), l.address(), new ServerTlsConfig(tls.certificate(), tls.privateKey(),
                    tls.trustAnchors(), tls.minVersion(), tls.sessionResumption(), List.of(KeyExchangeGroup.X25519)),
                    l.limits(), l.idleTimeout(), l.handshakeTimeout());
        }).toList()));

        Exchanged afterReload = request("/orders/1", "X25519MLKEM768", "X25519");
        assertThat(afterReload.clientSawGroup()).isEqualTo("X25519");
        assertThat(afterReload.status()).isEqualTo(200);
    }

    @Test
    void aJdkClientWithoutPostQuantumSupportIsServedByDefault() throws Exception {
        startProxy();

        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(), fixture.pki().client(ORDERS))) {
            assertThat(client.get("/orders/1").status()).isEqualTo(200);
        }
        assertThat(nextLogged().tlsGroup()).isIn("X25519", "P-256");
    }

    @Test
    void aTls12ClientGetsAClassicalGroupByDefault() throws Exception {
        startProxy();

        // X25519MLKEM768 comes first in the list, but TLS 1.2 cannot use it: the listener must pass over it.
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(), fixture.pki().client(ORDERS), "TLSv1.2")) {
            assertThat(client.get("/orders/1").status()).isEqualTo(200);
        }
        AccessLogEntry logged = nextLogged();
        assertThat(logged.tlsVersion()).isEqualTo("TLSv1.2");
        assertThat(logged.tlsGroup()).isIn("X25519", "P-256");
    }

    @Test
    void aBackendIsOfferedExactlyItsGroups() throws Exception {
        TestPki.Issued certificate = fixture.pki().backendServer("p384", b -> b.addSanIpAddress("127.0.0.1"));
        try (TestBackend p384Only = TestBackend.start(TestBackend.tlsContext(certificate, null, "P-384"))) {
            fixture.start(RunningProxy.builder(fixture.pki())
                    .identity("orders", ORDERS)
                    .backend("defaults", backendOffering(p384Only, null))
                    .backend("x25519-only", backendOffering(p384Only, List.of(KeyExchangeGroup.X25519)))
                    .route("defaults", "/defaults", "defaults", "orders")
                    .route("x25519-only", "/x25519-only", "x25519-only", "orders"));

            // The defaults include P-384, so the backend gets it (after a HelloRetryRequest); X25519 alone cannot.
            assertThat(request("/defaults", "X25519").status()).isEqualTo(200);
            assertThat(request("/x25519-only", "X25519").status()).isEqualTo(502);
        }
    }

    private BackendConfig backendOffering(TestBackend tlsBackend, List<KeyExchangeGroup> groups) throws Exception {
        BackendTlsConfig tls = new BackendTlsConfig(List.of(fixture.pki().writeCa("backend-ca", fixture.pki().root())), null, null, null,
                null, null, TlsVersion.TLS_1_2, groups);
        return BackendConfig.of(List.of(URI.create(tlsBackend.url())), tls);
    }

    /** Successful handshakes the proxy counted with this key exchange group. */
    private double keyExchanges(String group) {
        return fixture.proxy().count("mtls.proxy.tls.key.exchanges", "listener", "main", "group", group);
    }

    private AccessLogEntry nextLogged() throws InterruptedException {
        AccessLogEntry entry = fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS);
        assertThat(entry).as("an access log entry").isNotNull();
        return entry;
    }

    /**
     * One connection from a BoringSSL client offering these groups, in this order, and one GET on it.
     *
     * @param clientSawGroup   the group the client's handshake settled on; null when it failed
     * @param handshakeFailure why the client's handshake failed; null when it succeeded
     * @param status           the response's status; 0 when none came
     */
    record Exchanged(String clientSawGroup, Throwable handshakeFailure, int status) {
    }

    private Exchanged request(String path, String... groups) throws Exception {
        X509Bundle client = fixture.pki().client(ORDERS);
        SslContext context = SslContextBuilder.forClient()
                .sslProvider(SslProvider.OPENSSL)
                .keyManager(client.getKeyPair().getPrivate(), client.getCertificatePath())
                .trustManager(fixture.pki().root().getCertificate())
                .option(OpenSslContextOption.GROUPS, groups)
                .build();
        BlockingQueue<Integer> statuses = new ArrayBlockingQueue<>(1);
        InetSocketAddress address = fixture.proxy().address();
        // Kept from the initializer: a refused handshake can close the channel, which empties its pipeline, before
        // connect().sync() returns.
        AtomicReference<SslHandler> handler = new AtomicReference<>();
        Channel channel = new Bootstrap().group(clients).channel(NioSocketChannel.class)
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        handler.set(context.newHandler(ch.alloc(), "localhost", address.getPort()));
                        ch.pipeline().addLast(handler.get(), new HttpClientCodec(), new HttpObjectAggregator(1 << 16),
                                new SimpleChannelInboundHandler<FullHttpResponse>() {
                                    @Override
                                    protected void channelRead0(ChannelHandlerContext ctx, FullHttpResponse r) {
                                        statuses.add(r.status().code());
                                    }

                                    @Override
                                    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                        // A refused handshake is what some tests expect; the future reports it.
                                        ctx.close();
                                    }
                                });
                    }
                })
                .connect(address).sync().channel();
        try {
            SslHandler tls = handler.get();
            if (!tls.handshakeFuture().await(5, TimeUnit.SECONDS)) {
                throw new AssertionError("the handshake neither completed nor failed within 5 s");
            }
            if (!tls.handshakeFuture().isSuccess()) {
                return new Exchanged(null, tls.handshakeFuture().cause(), 0);
            }
            String group = SSL.getGroupName(((ReferenceCountedOpenSslEngine) tls.engine()).sslPointer());
            FullHttpRequest get = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, path);
            get.headers().set(HttpHeaderNames.HOST, "localhost");
            channel.writeAndFlush(get);
            Integer status = statuses.poll(5, TimeUnit.SECONDS);
            return new Exchanged(group, null, status == null ? 0 : status);
        } finally {
            channel.close().sync();
            ReferenceCountUtil.release(context);
        }
    }
}
