package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.cert.X509v2CRLBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateHolder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code /admin/certs} and the expiry gauges of the real application list everything whose expiry is an outage: the
 * listener's certificate and client CAs, the proxy's client certificate towards a backend and the CAs it verifies
 * the backend with, and every CRL with its nextUpdate; after a rotation picked up by the file watcher they describe
 * the new files, not the ones read at start.
 */
class AdminCertsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String PROXY_ID = "spiffe://prod.test/mtls-proxy";

    @TempDir
    Path workspace;
    TestPki pki;
    TestPki.Issued proxyClient;
    TestBackend backend;
    RunCommand.Running running;
    final HttpClient http = HttpClient.newHttpClient();
    final ObjectMapper json = new ObjectMapper();

    @BeforeEach
    void setUp() throws Exception {
        pki = TestPki.create(Files.createDirectories(workspace.resolve("pki")));
        proxyClient = pki.proxyClient(PROXY_ID);
        backend = TestBackend.start(TestBackend.tlsContext(pki.backendServer("backend", b -> b
                .addSanIpAddress("127.0.0.1")), pki.root()));
        pki.write("ca.crl", pki.rootCrl());
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), """
                trustAnchors:
                  clients:
                    caBundle: %1$s
                    crls: [%2$s]
                listeners:
                  - name: main
                    address: 127.0.0.1:0
                    tls: { certificate: %3$s, privateKey: %4$s }
                identities:
                  orders: { spiffeId: "%5$s" }
                routes:
                  - { name: orders-api, pathPrefix: /orders, backend: shop, allow: [orders] }
                backends:
                  shop:
                    url: "%6$s"
                    tls:
                      serverCAs: [%1$s]
                      certificate: %7$s
                      privateKey: %8$s
                accessLog: { enabled: false }
                admin: { address: 127.0.0.1:0 }
                reload: { watch: true, debounce: 200ms }
                """.formatted(pki.caPem(), pki.dir().resolve("ca.crl"), pki.serverCertificatePem(),
                pki.serverKeyPem(), ORDERS, backend.url(), proxyClient.certificate(), proxyClient.privateKey()));
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet);
    }

    @AfterEach
    void tearDown() {
        if (running != null) {
            running.close();
        }
        backend.close();
    }

    private String admin(String path) throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + running.admin().address().getPort() + path)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(200);
        return response.body();
    }

    private List<JsonNode> certs(String role) throws Exception {
        List<JsonNode> found = new ArrayList<>();
        for (JsonNode entry : json.readTree(admin("/admin/certs"))) {
            if (entry.get("role").asText().equals(role)) {
                found.add(entry);
            }
        }
        return found;
    }

    private static String serial(X509Bundle certificate) {
        return certificate.getCertificate().getSerialNumber().toString(16);
    }

    @Test
    void everyCertificateAndCrlInUseIsListedAndNoKeyIsShown() throws Exception {
        String body = admin("/admin/certs");
        assertThat(body).doesNotContain("PRIVATE KEY").doesNotContain("BEGIN").doesNotContain("proxy-client.key");
        assertThat(certs("server")).hasSize(1);
        assertThat(certs("client_ca")).singleElement()
                .satisfies(ca -> assertThat(ca.get("listener").asText()).isEqualTo("main"));

        JsonNode client = certs("backend_client").get(0);
        assertThat(certs("backend_client")).hasSize(1);
        assertThat(client.get("backend").asText()).isEqualTo("shop");
        assertThat(client.has("listener")).isFalse();
        assertThat(client.get("index").asInt()).isZero();
        assertThat(client.get("file").asText()).isEqualTo(proxyClient.certificate().toString());
        assertThat(client.get("serial").asText()).isEqualTo(serial(proxyClient.bundle()));
        assertThat(client.get("sans").toString()).contains(PROXY_ID);
        assertThat(client.get("notAfter").asText())
                .isEqualTo(proxyClient.bundle().getCertificate().getNotAfter().toInstant().toString());

        JsonNode ca = certs("backend_ca").get(0);
        assertThat(certs("backend_ca")).hasSize(1);
        assertThat(ca.get("backend").asText()).isEqualTo("shop");
        assertThat(ca.get("file").asText()).isEqualTo(pki.caPem().toString());
        assertThat(ca.get("serial").asText()).isEqualTo(serial(pki.root()));

        JsonNode crl = certs("crl").get(0);
        assertThat(certs("crl")).hasSize(1);
        assertThat(crl.get("anchor").asText()).isEqualTo("clients");
        assertThat(crl.get("index").asInt()).isZero();
        assertThat(crl.get("file").asText()).isEqualTo(pki.dir().resolve("ca.crl").toString());
        assertThat(crl.get("issuer").asText()).isEqualTo(pki.root().getCertificate().getSubjectX500Principal()
                .getName(javax.security.auth.x500.X500Principal.RFC2253));
        assertThat(crl.get("daysLeft").asLong()).isZero();
        assertThat(Duration.between(Instant.now(), Instant.parse(crl.get("nextUpdate").asText())))
                .isBetween(Duration.ofHours(23), Duration.ofHours(24));
        assertThat(crl.get("revoked").asInt()).isZero();
    }

    /**
     * Each CRL says whether it counts, judged as the handshake judges it: one that never can (a weak signature, an
     * issuer without cRLSign) or cannot yet (issued in the future) says why, and one whose issuer is not in the
     * bundle (an intermediate's) says that it is judged against the CA a client sends. The gauge still lists them.
     */
    @Test
    void eachCrlSaysWhetherItCountsAndWhyNot() throws Exception {
        X509Bundle certSignOnly = TestPki.newRoot("cert-sign-only CA",
                b -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign));
        X509Bundle intermediate = TestPki.intermediate(pki.root(), "an intermediate CA");
        Instant now = Instant.now();
        Instant issuedLater = now.plus(Duration.ofHours(1)).truncatedTo(ChronoUnit.SECONDS);
        pki.write("ca.pem", pki.root().getCertificatePEM() + certSignOnly.getCertificatePEM());
        pki.write("ca.crl", pki.rootCrl()
                + TestPki.crl(pki.root().getCertificate().getSubjectX500Principal(),
                        pki.root().getKeyPair().getPrivate(), "SHA1withECDSA", now.minus(Duration.ofMinutes(1)),
                        now.plus(Duration.ofDays(1)), b -> { })
                + TestPki.crl(pki.root(), issuedLater, issuedLater.plus(Duration.ofDays(1)))
                + TestPki.crl(certSignOnly, now.minus(Duration.ofMinutes(1)), now.plus(Duration.ofDays(1)))
                + TestPki.crl(intermediate, now.minus(Duration.ofMinutes(1)), now.plus(Duration.ofDays(1))));

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(certs("crl")).hasSize(5));

        List<JsonNode> crls = certs("crl");
        assertThat(crls.get(0).get("counts").asBoolean()).isTrue();
        assertThat(crls.get(0).has("why")).isFalse();
        assertThat(crls.subList(1, 4)).extracting(c -> c.get("counts").asText() + ": " + c.get("why").asText())
                .containsExactly(
                        "false: weak signature algorithm SHA1withECDSA",
                        "false: thisUpdate " + issuedLater + " is in the future; it counts from then",
                        "false: its issuer's keyUsage lacks cRLSign");
        assertThat(crls.get(4).get("counts").isNull()).isTrue();
        assertThat(crls.get(4).get("why").asText()).isEqualTo("its issuer is not a CA of the anchor: an"
                + " intermediate CA's CRL is judged against the certificate a client sends");
        assertThat(admin("/metrics")).contains(
                "mtls_proxy_crl_next_update_timestamp_seconds{anchor=\"clients\",index=\"3\"}");
    }

    @Test
    void theGaugesCarryTheBackendCertificatesWithOneLabelSet() throws Exception {
        long clientNotAfter = proxyClient.bundle().getCertificate().getNotAfter().toInstant().getEpochSecond();
        assertThat(admin("/metrics"))
                .contains("mtls_proxy_certificate_expiry_timestamp_seconds{backend=\"shop\",index=\"0\","
                        + "listener=\"\",role=\"backend_client\"} " + (double) clientNotAfter)
                .contains("mtls_proxy_certificate_expiry_timestamp_seconds{backend=\"shop\",index=\"0\","
                        + "listener=\"\",role=\"backend_ca\"}")
                .contains("mtls_proxy_certificate_expiry_timestamp_seconds{backend=\"\",index=\"0\","
                        + "listener=\"main\",role=\"server\"}")
                .contains("mtls_proxy_crl_next_update_timestamp_seconds{anchor=\"clients\",index=\"0\"}");
    }

    @Test
    void aBackendClientCertificateRotatedInPlaceIsShownAndPresentedAfterTheWatcherReloads() throws Exception {
        X509Bundle next = TestPki.issue(pki.root(), PROXY_ID, b -> b
                .subject("CN=mtls-proxy rotated,O=mtls-proxy tests")
                .notAfter(Instant.now().plus(Duration.ofDays(30))));
        // Only the backend's files change: the watcher must watch them. Key first: a reload between the two writes
        // fails (the key is not the certificate's) and changes nothing; the second write reloads again.
        pki.write("proxy-client.key", next.getPrivateKeyPEM());
        pki.write("proxy-client.pem", next.getCertificatePEM());

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(certs("backend_client").get(0)
                .get("serial").asText()).isEqualTo(serial(next)));
        assertThat(certs("backend_client")).hasSize(1);
        assertThat(certs("backend_client").get(0).get("daysLeft").asLong()).isBetween(29L, 30L);
        assertThat(admin("/metrics")).contains("mtls_proxy_certificate_expiry_timestamp_seconds{backend=\"shop\","
                + "index=\"0\",listener=\"\",role=\"backend_client\"} "
                + (double) next.getCertificate().getNotAfter().toInstant().getEpochSecond());
        try (MtlsClient client = MtlsClient.connect(running.server().addresses().get(0), pki.root(),
                pki.client(ORDERS))) {
            assertThat(client.get("/orders").status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = backend.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.clientCertificate()).as("the backend sees the rotated certificate")
                .contains("CN=mtls-proxy rotated");
    }

    @Test
    void aRenewedCrlIsShownWithItsNewNextUpdateAfterTheWatcherReloads() throws Exception {
        Instant nextUpdate = Instant.now().plus(Duration.ofDays(7)).truncatedTo(ChronoUnit.SECONDS);

        pki.write("ca.crl", TestPki.crl(pki.root(), Instant.now().minusSeconds(60), nextUpdate));

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(certs("crl").get(0)
                .get("nextUpdate").asText()).isEqualTo(nextUpdate.toString()));
        assertThat(certs("crl")).hasSize(1);
        assertThat(certs("crl").get(0).get("daysLeft").asLong()).isBetween(6L, 7L);
        assertThat(admin("/metrics")).contains("mtls_proxy_crl_next_update_timestamp_seconds{anchor=\"clients\","
                + "index=\"0\"} " + (double) nextUpdate.getEpochSecond());
    }

    @Test
    void aCrlWithoutNextUpdateIsNeverStaleAndSaysSo() throws Exception {
        pki.write("ca.crl", crlWithoutNextUpdate(pki.root()));

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(certs("crl").get(0)
                .get("nextUpdate").isNull()).isTrue());
        assertThat(certs("crl").get(0).get("daysLeft").isNull()).isTrue();
        assertThat(admin("/metrics")).as("+Inf, not 0: a 0 would page as a CRL stale since 1970")
                .contains("mtls_proxy_crl_next_update_timestamp_seconds{anchor=\"clients\",index=\"0\"} +Inf");
        try (MtlsClient client = MtlsClient.connect(running.server().addresses().get(0), pki.root(),
                pki.client(ORDERS))) {
            assertThat(client.get("/orders").status()).isEqualTo(200);
        }
    }

    /** nextUpdate is optional in X.509 CRLs (RFC 5280 requires it, some CAs omit it); TestPki always sets one. */
    private static String crlWithoutNextUpdate(X509Bundle issuer) throws Exception {
        X509v2CRLBuilder builder = new X509v2CRLBuilder(
                new JcaX509CertificateHolder(issuer.getCertificate()).getSubject(),
                Date.from(Instant.now().minusSeconds(60)));
        String algorithm = issuer.getKeyPair().getPrivate().getAlgorithm().equals("EC") ? "SHA256withECDSA"
                : "SHA256withRSA";
        byte[] der = builder.build(new JcaContentSignerBuilder(algorithm).build(issuer.getKeyPair().getPrivate()))
                .getEncoded();
        return "-----BEGIN X509 CRL-----\n" + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
                + "\n-----END X509 CRL-----\n";
    }
}
