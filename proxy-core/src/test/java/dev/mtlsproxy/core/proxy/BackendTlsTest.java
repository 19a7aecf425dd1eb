package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The proxy as a TLS client of its backends, against real TLS backends on loopback: it verifies them as strictly as
 * it verifies its own clients, says why when it refuses one, and authenticates itself when a backend asks.
 */
class BackendTlsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String PROXY_ID = "spiffe://prod.test/mtls-proxy";
    static final String BACKEND_ID = "spiffe://backend.test/ns/shop/sa/orders-api";

    @TempDir
    static Path dir;
    static TestPki pki;
    static final List<AutoCloseable> started = new ArrayList<>();
    static TestBackend good;
    static TestBackend mtls;
    static RunningProxy proxy;
    static LogCapture log;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        log = LogCapture.of(ForwardingHandler.class);
        good = backend(TestBackend.tlsContext(pki.backendServer("good", b -> b
                .addSanDnsName("localhost").addSanIpAddress("127.0.0.1")), null));
        TestBackend wrongCa = backend(TestBackend.tlsContext(pki.backendServerOfAnotherRoot("rogue"), null));
        TestPki.Issued elsewhere = pki.backendServer("elsewhere", b -> b.addSanDnsName("orders.backend.test"));
        TestBackend mismatch = backend(TestBackend.tlsContext(elsewhere, null));
        TestBackend spiffe = backend(TestBackend.tlsContext(pki.backendServer("svid", b -> b
                .addSanUriName(BACKEND_ID)), null));
        mtls = backend(TestBackend.tlsContext(pki.backendServer("mtls", b -> b.addSanIpAddress("127.0.0.1")),
                pki.root()));
        Instant now = Instant.now();
        TestBackend expired = backend(TestBackend.tlsContext(pki.backendServer("expired", b -> b
                .addSanIpAddress("127.0.0.1")
                .notBefore(now.minus(Duration.ofDays(2))).notAfter(now.minus(Duration.ofDays(1)))), null));
        TestBackend plain = backend(null);
        ServerSocket silent = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        started.add(silent);

        BackendTlsConfig trustRoot = BackendTlsConfig.trusting(pki.caPem());
        TestPki.Issued proxyCertificate = pki.proxyClient(PROXY_ID);
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("good", tls(good.url(), trustRoot))
                .backend("wrong-ca", tls(wrongCa.url(), trustRoot))
                .backend("mismatch", tls(mismatch.url(), trustRoot))
                .backend("sni", tls(mismatch.url(), trustRoot.withServerName("orders.backend.test")))
                .backend("spiffe-ok", tls(spiffe.url(), trustRoot.withSpiffeId(BACKEND_ID, false)))
                .backend("spiffe-bad", tls(spiffe.url(), trustRoot.withSpiffeId(
                        "spiffe://backend.test/ns/shop/sa/billing", false)))
                .backend("mtls", tls(mtls.url(), trustRoot.withClientCertificate(proxyCertificate.certificate(),
                        proxyCertificate.privateKey())))
                .backend("mtls-no-cert", tls(mtls.url(), trustRoot))
                .backend("expired", tls(expired.url(), trustRoot))
                .backend("plain", tls(plain.url().replace("http:", "https:"), trustRoot))
                .backend("silent", tls("https://127.0.0.1:" + silent.getLocalPort(), trustRoot)
                        .withTimeouts(Duration.ofMillis(300), null, null))
                .route("good", "/good", "good", "orders")
                .route("wrong-ca", "/wrong-ca", "wrong-ca", "orders")
                .route("mismatch", "/mismatch", "mismatch", "orders")
                .route("sni", "/sni", "sni", "orders")
                .route("spiffe-ok", "/spiffe-ok", "spiffe-ok", "orders")
                .route("spiffe-bad", "/spiffe-bad", "spiffe-bad", "orders")
                .route("mtls", "/mtls", "mtls", "orders")
                .route("mtls-no-cert", "/mtls-no-cert", "mtls-no-cert", "orders")
                .route("expired", "/expired", "expired", "orders")
                .route("plain", "/plain", "plain", "orders")
                .route("silent", "/silent", "silent", "orders")
                .start();
    }

    private static TestBackend backend(io.netty.handler.ssl.SslContext tls) throws InterruptedException {
        TestBackend backend = TestBackend.start(tls);
        started.add(backend);
        return backend;
    }

    private static BackendConfig tls(String url, BackendTlsConfig tls) {
        return BackendConfig.of(List.of(URI.create(url)), tls);
    }

    @AfterAll
    static void stop() throws Exception {
        proxy.close();
        for (AutoCloseable c : started) {
            c.close();
        }
        log.close();
    }

    private static MtlsClient.Response get(String path) throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            return client.get(path);
        }
    }

    @Test
    void aBackendWithACertificateFromTheConfiguredCaIsReachedOverTls() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            assertThat(client.get("/good/1").bodyText()).isEqualTo("hello from backend\n");
            int connections = good.connectionsAccepted();
            for (int i = 0; i < 5; i++) {
                assertThat(client.get("/good/" + i).status()).isEqualTo(200);
            }
            assertThat(good.connectionsAccepted()).as("keep-alive TLS connections are pooled and reused")
                    .isEqualTo(connections);
        }
        TestBackend.Recorded seen = good.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.uri()).isEqualTo("/good/1");
        assertThat(seen.headers().get("x-forwarded-client-cert")).endsWith(";URI=" + ORDERS);
        assertThat(seen.clientCertificate()).as("no client certificate is configured for this backend").isNull();
    }

    @Test
    void aBackendCertificateFromAnotherCaIsRefusedWith502AndTheReasonLogged() throws Exception {
        assertThat(get("/wrong-ca").status()).isEqualTo(502);

        assertThat(log.await("backend=wrong-ca", "status=502"))
                .contains("cause=\"backend certificate not trusted\"");
        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "wrong-ca", "reason", "tls"))
                .isEqualTo(1);
    }

    @Test
    void aCertificateForAnotherHostIsRefused() throws Exception {
        assertThat(get("/mismatch").status()).isEqualTo(502);

        assertThat(log.await("backend=mismatch", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for 127.0.0.1\"");
    }

    @Test
    void serverNameSetsSniAndTheNameVerified() throws Exception {
        assertThat(get("/sni").status()).isEqualTo(200);
    }

    @Test
    void aSpiffeBackendIsPinnedByItsId() throws Exception {
        assertThat(get("/spiffe-ok").status()).isEqualTo(200);
        assertThat(get("/spiffe-bad").status()).isEqualTo(502);

        assertThat(log.await("backend=spiffe-bad", "status=502")).contains("cause=\"SPIFFE ID mismatch: expected"
                + " spiffe://backend.test/ns/shop/sa/billing, the certificate has " + BACKEND_ID + "\"");
    }

    @Test
    void aBackendRequiringAClientCertificateGetsTheProxysOne() throws Exception {
        assertThat(get("/mtls").status()).isEqualTo(200);

        assertThat(mtls.nextRequest(5, TimeUnit.SECONDS).clientCertificate())
                .isEqualTo("CN=mtls-proxy,O=mtls-proxy tests");
    }

    @Test
    void withoutAClientCertificateSuchABackendIsA502() throws Exception {
        assertThat(get("/mtls-no-cert").status()).isEqualTo(502);

        assertThat(log.await("backend=mtls-no-cert", "status=502")).contains("client certificate");
    }

    @Test
    void anExpiredBackendCertificateIsRefused() throws Exception {
        assertThat(get("/expired").status()).isEqualTo(502);

        assertThat(log.await("backend=expired", "status=502")).contains("cause=\"backend certificate expired\"");
    }

    @Test
    void aPlainHttpServerBehindAnHttpsEndpointIsRecognised() throws Exception {
        assertThat(get("/plain").status()).isEqualTo(502);

        assertThat(log.await("backend=plain", "status=502")).contains("cause=\"backend does not speak TLS\"");
    }

    @Test
    void aHandshakeThatNeverCompletesTimesOut() throws Exception {
        assertThat(get("/silent").status()).isEqualTo(502);

        assertThat(log.await("backend=silent", "status=502")).contains("cause=\"TLS handshake timeout\"");
        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "silent", "reason", "timeout"))
                .isEqualTo(1);
    }
}
