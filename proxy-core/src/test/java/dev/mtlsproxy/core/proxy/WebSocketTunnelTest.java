package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * WebSocket through the proxy: the upgrade is authorised like any request, then frames flow both ways until either
 * side closes. Other upgrades (h2c) are never relayed: a tunnel of another HTTP would carry unchecked requests.
 */
class WebSocketTunnelTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING = "spiffe://prod.test/ns/shop/sa/billing";
    static final String UPGRADE = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture(
            pki -> TestBackend.start(TestBackend.tlsContext(pki.backendServer("ws-backend", b -> b
                    .addSanIpAddress("127.0.0.1")), null)),
            (pki, backend) -> RunningProxy.builder(pki)
                    .identity("orders", ORDERS)
                    .identity("billing", BILLING)
                    .backend("chat", BackendConfig.of(List.of(URI.create(backend.url())),
                            BackendTlsConfig.trusting(pki.caPem())))
                    .route("ws", "/ws", "chat", "orders")
                    .route("other", "/", "chat", "orders", "billing"));

    /** Each test reads what the backend saw of its own requests only. */
    @org.junit.jupiter.api.BeforeEach
    void forgetEarlierRequests() throws InterruptedException {
        while (fixture.backend().nextRequest(100, TimeUnit.MILLISECONDS) != null) {
            // drained
        }
        fixture.proxy().accessLog().clear();
    }

    @Test
    void aWebSocketClientTalksToTheBackendThroughTheProxy() throws Exception {
        BlockingQueue<String> received = new LinkedBlockingQueue<>();
        WebSocket ws = HttpClient.newBuilder().sslContext(clientContext()).build().newWebSocketBuilder()
                .buildAsync(URI.create("wss://localhost:" + fixture.proxy().address().getPort() + "/ws"),
                        new Collector(received))
                .get(10, TimeUnit.SECONDS);

        ws.sendText("hello through the proxy", true).get(5, TimeUnit.SECONDS);
        assertThat(received.poll(5, TimeUnit.SECONDS)).isEqualTo("hello through the proxy");
        String large = "x".repeat(200_000);
        ws.sendText(large, true).get(5, TimeUnit.SECONDS);
        String echoed = received.poll(5, TimeUnit.SECONDS);
        assertThat(echoed).hasSize(large.length());
        assertThat(echoed.equals(large)).isTrue();
        ws.sendClose(WebSocket.NORMAL_CLOSURE, "done").get(5, TimeUnit.SECONDS);
        assertThat(received.poll(5, TimeUnit.SECONDS)).isEqualTo("closed 1000");

        TestBackend.Recorded upgrade = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        assertThat(upgrade.headers().get("upgrade")).isEqualToIgnoringCase("websocket");
        assertThat(upgrade.headers().get("x-forwarded-client-cert")).endsWith(";URI=" + ORDERS);
        AccessLogEntry logged = logged("/ws");
        assertThat(logged.status()).isEqualTo(101);
        assertThat(logged.bytesIn()).isGreaterThan(200_000);
        assertThat(logged.bytesOut()).isGreaterThan(200_000);
    }

    @Test
    void anUpgradeIsAuthorisedLikeAnyRequestAndARefusalLeavesAnHttpConnection() throws Exception {
        try (MtlsClient client = fixture.connect(BILLING)) {
            client.send(UPGRADE);
            assertThat(client.readResponse().status()).isEqualTo(403);
            assertThat(client.get("/hello").status()).as("the same connection, back to HTTP").isEqualTo(200);
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/hello");
    }

    @Test
    void framesSentRightAfterTheUpgradeRequestReachTheBackendIntact() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // A client that does not wait for 101: its first frame is in the same write as the request.
            ByteArrayOutputStream both = new ByteArrayOutputStream();
            both.write(UPGRADE.getBytes(StandardCharsets.US_ASCII));
            both.write(maskedTextFrame("early"));
            client.output().write(both.toByteArray());
            client.output().flush();

            Response switched = client.readResponse();
            assertThat(switched.status()).isEqualTo(101);
            assertThat(switched.header("upgrade")).isEqualToIgnoringCase("websocket");
            assertThat(switched.header("connection")).isEqualToIgnoringCase("upgrade");
            assertThat(switched.header("sec-websocket-accept")).isEqualTo("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
            assertThat(readTextFrame(client.input())).isEqualTo("early");
            client.output().write(maskedTextFrame("later"));
            client.output().flush();
            assertThat(readTextFrame(client.input())).isEqualTo("later");
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aFrameTheBackendSendsWithItsSwitchReachesTheClientFirst() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // A backend that greets on connect: its 101 and first frame reach the proxy in one read.
            client.send(UPGRADE.replace("/ws", "/ws-greets"));

            Response switched = client.readResponse();
            assertThat(switched.status()).isEqualTo(101);
            assertThat(switched.header("sec-websocket-accept")).isEqualTo("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
            assertThat(readTextFrame(client.input())).isEqualTo("welcome");
            client.output().write(maskedTextFrame("and back"));
            client.output().flush();
            assertThat(readTextFrame(client.input())).as("the tunnel still carries frames both ways")
                    .isEqualTo("and back");
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/ws-greets");
    }

    @Test
    void aDeclinedUpgradeIsAnOrdinaryResponse() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send(UPGRADE.replace("/ws", "/plain-http"));
            Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("hello from backend\n");
            assertThat(client.get("/after").status()).isEqualTo(200);
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).headers().get("upgrade")).isEqualTo("websocket");
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aRequestPipelinedBehindADeclinedUpgradeIsReadOnceTheAnswerIsKnown() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // The codec holds back what follows an upgrade request until the backend has answered it.
            client.send(UPGRADE.replace("/ws", "/plain-http") + "GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
            assertThat(client.readResponse().bodyText()).isEqualTo("hello from backend\n");
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/plain-http");
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/next");
    }

    @Test
    void aReloadThatRemovesTheGrantClosesAnOpenTunnelAndOneThatKeepsItDoesNot() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send(UPGRADE);
            assertThat(client.readResponse().status()).isEqualTo(101);
            try {
                fixture.proxy().reload(c -> wsAllows(c, "orders", "billing"));
                client.output().write(maskedTextFrame("still granted"));
                client.output().flush();
                assertThat(readTextFrame(client.input())).isEqualTo("still granted");

                fixture.proxy().reload(c -> wsAllows(c, "billing"));

                assertThat(client.closedWithin(5_000)).as("a tunnel has no next request to refuse").isTrue();
            } finally {
                fixture.proxy().reload(c -> wsAllows(c, "orders"));
            }
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/ws");
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send(UPGRADE);
            assertThat(client.readResponse().status()).as("the grant restored").isEqualTo(101);
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    /**
     * The line that says why a reload closed a tunnel quotes its path, which the client chose: a {@code "} in it
     * (legal in a request target as Netty reads it) ended the detail field and added the client's own fields.
     */
    @Test
    void theLogLineOfATunnelAReloadClosesKeepsItsPathInsideTheDetail() throws Exception {
        try (LogCapture log = LogCapture.of(Reverification.class);
                MtlsClient client = fixture.connect(ORDERS)) {
            client.send(UPGRADE.replace("GET /ws ", "GET /ws/a\"%20event=forged%20x=\" "));
            assertThat(client.readResponse().status()).isEqualTo(101);
            try {
                fixture.proxy().reload(c -> wsAllows(c, "billing"));

                assertThat(client.closedWithin(5_000)).isTrue();
                assertThat(log.await("event=connection_closed", "reason=tunnel_deny")).matches(
                        "event=connection_closed listener=\\S+ remote=\\S+ reason=tunnel_deny detail=\"[^\"]*\""
                                + " cause=reload");
            } finally {
                fixture.proxy().reload(c -> wsAllows(c, "orders"));
            }
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aGrantRemovedWhileTheBackendIsStillAcceptingTheUpgradeClosesTheTunnelAsItOpens() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send(UPGRADE.replace("/ws", "/ws?ms=1000"));
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).as("authorised and forwarded")
                    .isEqualTo("/ws?ms=1000");
            try {
                // The reload re-judges open tunnels before this connection is one.
                fixture.proxy().reload(c -> wsAllows(c, "billing"));

                assertThat(client.readResponse().status()).isEqualTo(101);
                assertThat(client.closedWithin(5_000)).isTrue();
            } finally {
                fixture.proxy().reload(c -> wsAllows(c, "orders"));
            }
        }
    }

    @Test
    void aTunnelOpenedUnderATimeBoxedGrantClosesWhenTheGrantExpires() throws Exception {
        Instant expires = Instant.now().plusSeconds(4);
        fixture.proxy().reload(c -> wsRules(c, RuleConfig.allow("orders").withExpires(expires)));
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send(UPGRADE);
            assertThat(client.readResponse().status()).isEqualTo(101);
            client.output().write(maskedTextFrame("while granted"));
            client.output().flush();
            assertThat(readTextFrame(client.input())).isEqualTo("while granted");

            assertThat(client.closedWithin(10_000)).as("closed at the expiry, with no request to refuse").isTrue();
            assertThat(Instant.now()).isAfterOrEqualTo(expires);
        } finally {
            fixture.proxy().reload(c -> wsAllows(c, "orders"));
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    private static ProxyConfig wsAllows(ProxyConfig config, String... allow) {
        return wsRules(config, RuleConfig.allow(allow));
    }

    private static ProxyConfig wsRules(ProxyConfig config, RuleConfig... rules) {
        List<RouteConfig> routes = new ArrayList<>();
        for (RouteConfig r : config.routes()) {
            routes.add(r.name().equals("ws")
                    ? new RouteConfig(r.name(), r.host(), r.pathPrefix(), r.methods(), r.backend(), null,
                            List.of(rules), null, null)
                    : r);
        }
        return config.withRoutes(routes);
    }

    @ParameterizedTest(name = "Connection: {0}")
    // A compliant client names HTTP2-Settings in Connection (RFC 7540 3.2.1); a careless one does not, and the
    // field is connection-specific all the same.
    @ValueSource(strings = {"Upgrade, HTTP2-Settings", "Upgrade"})
    void anH2cUpgradeIsNeverRelayed(String connection) throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            Response response = client.get("/h2c", "Upgrade: h2c", "Connection: " + connection,
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA");
            assertThat(response.status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.headers().contains("upgrade")).isFalse();
        assertThat(seen.headers().contains("http2-settings")).isFalse();
    }

    private static SSLContext clientContext() throws Exception {
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        KeyStore keys = fixture.pki().client(ORDERS).toKeyStore(new char[0]);
        kmf.init(keys, new char[0]);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), fixture.pki().root().toTrustManagerFactory().getTrustManagers(), null);
        return context;
    }

    /** A client frame: FIN, text, masked (clients must mask), payload under 126 bytes. */
    static byte[] maskedTextFrame(String text) {
        byte[] payload = text.getBytes(StandardCharsets.UTF_8);
        byte[] mask = {0x11, 0x22, 0x33, 0x44};
        byte[] frame = new byte[6 + payload.length];
        frame[0] = (byte) 0x81;
        frame[1] = (byte) (0x80 | payload.length);
        System.arraycopy(mask, 0, frame, 2, 4);
        for (int i = 0; i < payload.length; i++) {
            frame[6 + i] = (byte) (payload[i] ^ mask[i % 4]);
        }
        return frame;
    }

    /** A server frame: unmasked text under 126 bytes. */
    static String readTextFrame(InputStream in) throws IOException {
        int first = in.read();
        int length = in.read() & 0x7f;
        assertThat(first).as("FIN + text").isEqualTo(0x81);
        return new String(in.readNBytes(length), StandardCharsets.UTF_8);
    }

    private AccessLogEntry logged(String path) throws InterruptedException {
        AccessLogEntry e;
        while ((e = fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS)) != null) {
            if (e.path().equals(path)) {
                return e;
            }
        }
        throw new AssertionError("no access log entry for " + path);
    }

    /** Collects whole text messages, and the close. */
    private static final class Collector implements WebSocket.Listener {
        private final BlockingQueue<String> received;
        private final StringBuilder partial = new StringBuilder();

        Collector(BlockingQueue<String> received) {
            this.received = received;
        }

        @Override
        public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                received.add(partial.toString());
                partial.setLength(0);
            }
            webSocket.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
            webSocket.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
            received.add("closed " + statusCode);
            return CompletableFuture.completedFuture(null);
        }
    }
}
