package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.core.backend.Backends;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.micrometer.core.instrument.Gauge;
import io.netty.pkitesting.X509Bundle;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The proxy's certificates towards its backends (its client certificate for mTLS, the CAs it verifies them with)
 * are in the expiry gauge like the listeners' own, and follow a rotation in place: the same file paths with new
 * content, as cert-manager or Vault agent rotate them. Real TLS backend requiring a client certificate.
 */
class BackendCertificatesTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String PROXY_ID = "spiffe://prod.test/mtls-proxy";
    static final String EXPIRY = "mtls.proxy.certificate.expiry.timestamp";

    @TempDir
    Path dir;
    TestPki pki;
    TestPki.Issued proxyClient;
    TestBackend mtls;
    TestBackend plain;
    RunningProxy proxy;

    @BeforeEach
    void start() throws Exception {
        pki = TestPki.create(dir);
        proxyClient = pki.proxyClient(PROXY_ID);
        mtls = TestBackend.start(TestBackend.tlsContext(pki.backendServer("mtls", b -> b
                .addSanIpAddress("127.0.0.1")), pki.root()));
        plain = TestBackend.start();
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("mtls", BackendConfig.of(List.of(URI.create(mtls.url())), BackendTlsConfig
                        .trusting(pki.caPem()).withClientCertificate(proxyClient.certificate(),
                                proxyClient.privateKey())))
                .backend("plain", plain.url())
                .route("mtls", "/mtls", "mtls", "orders")
                .route("plain", "/plain", "plain", "orders")
                .start();
    }

    @AfterEach
    void stop() {
        proxy.close();
        mtls.close();
        plain.close();
    }

    private Map<String, Double> expiryRows() {
        Map<String, Double> rows = new LinkedHashMap<>();
        for (Gauge g : proxy.metrics().find(EXPIRY).gauges()) {
            rows.put(g.getId().getTag("role") + " listener=" + g.getId().getTag("listener") + " backend="
                    + g.getId().getTag("backend") + " index=" + g.getId().getTag("index"), g.value());
        }
        return rows;
    }

    private static double notAfter(X509Bundle certificate) {
        return certificate.getCertificate().getNotAfter().toInstant().getEpochSecond();
    }

    private TestBackend.Recorded requestThroughMtlsBackend() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            assertThat(client.get("/mtls/1").status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = mtls.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen).isNotNull();
        return seen;
    }

    /** A new client certificate for the proxy, from the same root, written over the configured files. */
    private X509Bundle rotateProxyClient(String commonName, Duration validFor) {
        X509Bundle next = TestPki.issue(pki.root(), PROXY_ID, b -> b
                .subject("CN=" + commonName + ",O=mtls-proxy tests")
                .notAfter(Instant.now().plus(validFor)));
        pki.write("proxy-client.key", next.getPrivateKeyPEM());
        pki.write("proxy-client.pem", next.getCertificatePEM());
        return next;
    }

    @Test
    void theBackendClientCertificateAndServerCasAreGaugedWithTheBackendLabel() throws Exception {
        double server = Pem.readCertificates(pki.serverCertificatePem()).get(0).getNotAfter().toInstant()
                .getEpochSecond();
        assertThat(expiryRows()).as("a plain http backend has no certificate").containsExactlyInAnyOrderEntriesOf(
                Map.of("server listener=main backend= index=0", server,
                        "client_ca listener=main backend= index=0", notAfter(pki.root()),
                        "backend_client listener= backend=mtls index=0", notAfter(proxyClient.bundle()),
                        "backend_ca listener= backend=mtls index=0", notAfter(pki.root())));
    }

    @Test
    void aClientCertificateRotatedInPlaceIsPresentedAndGaugedAfterAReload() throws Exception {
        assertThat(requestThroughMtlsBackend().clientCertificate()).contains("CN=mtls-proxy");
        X509Bundle next = rotateProxyClient("mtls-proxy rotated", Duration.ofDays(30));

        try (LogCapture log = LogCapture.of(Backends.class)) {
            assertThat(proxy.reload(c -> c)).isEqualTo(2);
            assertThat(log.lines()).containsExactly("event=backend_tls_reloaded backend=mtls reason=files_changed");
        }

        assertThat(requestThroughMtlsBackend().clientCertificate()).contains("CN=mtls-proxy rotated");
        assertThat(expiryRows()).containsEntry("backend_client listener= backend=mtls index=0", notAfter(next));
    }

    @Test
    void aReloadWithTheSameBackendFilesKeepsItsWarmConnections() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            assertThat(client.get("/mtls/1").status()).isEqualTo(200);
            int connections = mtls.connectionsAccepted();

            try (LogCapture log = LogCapture.of(Backends.class)) {
                proxy.reload(c -> c);
                assertThat(log.lines()).isEmpty();
            }

            assertThat(client.get("/mtls/2").status()).isEqualTo(200);
            assertThat(mtls.connectionsAccepted()).as("the pooled backend connection is reused").isEqualTo(connections);
        }
    }

    @Test
    void aRotationCaughtHalfWayFailsTheReloadAndTheOldCertificateKeepsServing() throws Exception {
        X509Bundle next = TestPki.issue(pki.root(), PROXY_ID, b -> b.subject("CN=half,O=mtls-proxy tests"));
        pki.write("proxy-client.pem", next.getCertificatePEM());

        ReloadException failure = catchThrowableOfType(ReloadException.class, () -> proxy.reload(c -> c));

        assertThat(failure.reason()).isEqualTo(ReloadFailureReason.TLS_MATERIAL);
        assertThat(failure.getMessage()).contains("proxy-client.key").doesNotContain("PRIVATE KEY");
        assertThat(requestThroughMtlsBackend().clientCertificate()).contains("CN=mtls-proxy");
        assertThat(expiryRows()).containsEntry("backend_client listener= backend=mtls index=0",
                notAfter(proxyClient.bundle()));
    }

    @Test
    void aBackendRemovedByAReloadLeavesTheGauge() throws Exception {
        proxy.reload(c -> c.withRoutes(c.routes().stream().filter(r -> !r.backend().equals("mtls")).toList())
                .withBackends(Map.of("plain", c.backends().get("plain"))));

        assertThat(expiryRows().keySet()).noneMatch(row -> row.contains("backend=mtls"));
    }
}
