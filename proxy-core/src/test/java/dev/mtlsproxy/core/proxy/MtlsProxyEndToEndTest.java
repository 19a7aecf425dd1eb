package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.netty.pkitesting.X509Bundle;
import java.nio.charset.StandardCharsets;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.asn1.x509.GeneralName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The proxy as a client sees it: real TLS on loopback, certificates minted for this run, a real backend. */
class MtlsProxyEndToEndTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING = "spiffe://prod.test/ns/shop/sa/billing";

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .identity("billing", BILLING)
            .backend("shop", backend.url())
            .backend("down", "http://127.0.0.1:1")
            .route("orders-api", "/orders", "shop", "orders")
            .route("billing-api", "/billing", "shop", "billing")
            .route("broken", "/broken", "down", "orders")
            .route("echo", "/echo", "shop", "orders")
            .route("slow", "/hang", "shop", "orders")
            .responseTimeout(Duration.ofMillis(500))
            .route("slow-ok", "/slow", "shop", "orders"));

    @Test
    void allowedClientGetsTheBackendResponseByteForByte() throws Exception {
        byte[] body = new byte[100_000];
        for (int i = 0; i < body.length; i++) {
            body[i] = (byte) (i * 31);
        }
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + body.length + "\r\n\r\n");
            client.output().write(body);
            client.output().flush();
            Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.body()).isEqualTo(body);
        }
        TestBackend.Recorded seen = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.uri()).isEqualTo("/echo");
        assertThat(seen.bodyBytes()).isEqualTo(body.length);
    }

    @Test
    void backendLearnsTheClientIdentityAndAddressFromForwardedHeaders() throws Exception {
        X509Bundle cert = fixture.pki().client(ORDERS);
        try (MtlsClient client = fixture.connect(cert)) {
            assertThat(client.get("/orders/42").status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        String xfcc = seen.headers().get("x-forwarded-client-cert");
        assertThat(xfcc).startsWith("By=" + TestPki.SERVER_SPIFFE_ID + ";Hash=")
                .contains(";Subject=\"CN=orders,O=mtls-proxy tests\"")
                .endsWith(";URI=" + ORDERS);
        assertThat(seen.headers().get("x-forwarded-for")).isEqualTo("127.0.0.1");
        assertThat(seen.headers().get("x-forwarded-proto")).isEqualTo("https");
        assertThat(seen.headers().get("x-forwarded-host")).isEqualTo("localhost");
    }

    @Test
    void spoofedIdentityHeadersFromTheClientAreStrippedAndReplaced() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            Response response = client.get("/orders",
                    "X-Forwarded-Client-Cert: By=x;URI=spiffe://prod.test/ns/shop/sa/admin",
                    "X-SSL-Client-DN: CN=admin",
                    "X_SSL_Client_DN: CN=admin",
                    "X-Amzn-Mtls-Clientcert-Subject: CN=admin",
                    "X-Forwarded-Tls-Client-Cert-Info: Subject=\"CN=admin\"",
                    "ssl_client_escaped_cert: -----BEGIN%20CERTIFICATE-----",
                    "Forwarded: for=10.0.0.1;host=admin.internal",
                    "Connection: x-custom-hop",
                    "X-Custom-Hop: dropped");
            assertThat(response.status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.headers().getAll("x-forwarded-client-cert")).singleElement().asString()
                .endsWith(";URI=" + ORDERS)
                .doesNotContain("admin");
        assertThat(seen.headers().contains("x-ssl-client-dn")).isFalse();
        assertThat(seen.headers().contains("x_ssl_client_dn")).as("read as X-SSL-Client-DN by CGI-style servers")
                .isFalse();
        assertThat(seen.headers().contains("x-amzn-mtls-clientcert-subject")).as("AWS ALB's").isFalse();
        assertThat(seen.headers().contains("x-forwarded-tls-client-cert-info")).as("Traefik's").isFalse();
        assertThat(seen.headers().contains("ssl_client_escaped_cert")).as("Tomcat SSLValve's").isFalse();
        assertThat(seen.headers().contains("forwarded")).isFalse();
        assertThat(seen.headers().contains("x-custom-hop")).isFalse();
    }

    @Test
    void everyRequestOnAKeptAliveConnectionGetsTheSameIdentityHeadersAndLosesSpoofedOnes() throws Exception {
        // The XFCC value and client address are built once per connection (issue #8); the stripping stays per
        // request.
        String clientAddress;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            clientAddress = client.localAddress().toString();
            assertThat(client.get("/orders/first").status()).isEqualTo(200);
            assertThat(client.get("/orders/second",
                    "X-Forwarded-Client-Cert: By=x;URI=spiffe://prod.test/ns/shop/sa/admin").status()).isEqualTo(200);
        }
        TestBackend.Recorded first = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        TestBackend.Recorded second = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        assertThat(second.headers().getAll("x-forwarded-client-cert"))
                .containsExactlyElementsOf(first.headers().getAll("x-forwarded-client-cert"))
                .singleElement().asString().endsWith(";URI=" + ORDERS).doesNotContain("admin");
        assertThat(second.headers().getAll("x-forwarded-for"))
                .containsExactlyElementsOf(first.headers().getAll("x-forwarded-for"));
        AccessLogEntry firstLogged = logged("/orders/first");
        AccessLogEntry secondLogged = logged("/orders/second");
        assertThat(firstLogged.client()).isEqualTo(clientAddress).startsWith("/127.0.0.1:");
        assertThat(secondLogged.client()).isEqualTo(clientAddress);
        assertThat(secondLogged.connectionId()).isEqualTo(firstLogged.connectionId());
    }

    @Test
    void anAllowedIdentityOnARouteItIsNotGrantedGets403AndTheBackendSeesNothing() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            Response response = client.get("/billing/invoices");
            assertThat(response.status()).isEqualTo(403);
            // The connection stays usable for requests that are allowed.
            assertThat(client.get("/orders").status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.uri()).isEqualTo("/orders");
        assertThat(fixture.backend().pendingRequests()).isZero();
        AccessLogEntry denied = logged("/billing/invoices");
        assertThat(denied.decision()).isEqualTo("deny");
        assertThat(denied.rule()).isEqualTo("default-deny");
        assertThat(denied.status()).isEqualTo(403);
        assertThat(denied.peer()).isEqualTo(ORDERS);
        assertThat(denied.tlsVersion()).isEqualTo("TLSv1.3");
        assertThat(denied.cipher()).startsWith("TLS_");
    }

    @Test
    void aPathTheClientDisguisesIsCheckedAndForwardedInItsNormalForm() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/orders/../billing/x").status()).isEqualTo(403);
            assertThat(client.get("/orders/%2e%2e/billing").status()).isEqualTo(403);
            assertThat(client.get("//orders//./a").status()).isEqualTo(200);
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/orders/a");
        assertThat(fixture.backend().pendingRequests()).isZero();
    }

    @Test
    void noRouteGets404AndNoBackendIsContacted() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/nowhere").status()).isEqualTo(404);
        }
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
    }

    @Test
    void backendDownGives502() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            Response response = client.get("/broken");
            assertThat(response.status()).isEqualTo(502);
            assertThat(client.get("/orders").status()).isEqualTo(200);
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void backendTooSlowGives504() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hang").status()).isEqualTo(504);
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void keepAliveRequestsReuseOneBackendConnection() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.get("/orders/warmup");
            int before = fixture.backend().connectionsAccepted();
            for (int i = 0; i < 5; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(200);
            }
            assertThat(fixture.backend().connectionsAccepted()).isEqualTo(before);
        }
        for (int i = 0; i < 6; i++) {
            fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void pipelinedRequestsAreAnsweredInOrder() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("GET /slow?ms=200 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    + "GET /billing HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    + "GET /orders/3 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Response first = client.readResponse();
            Response second = client.readResponse();
            Response third = client.readResponse();
            assertThat(first.bodyText()).isEqualTo("slow hello\n");
            assertThat(second.status()).isEqualTo(403);
            assertThat(third.status()).isEqualTo(200);
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aHeadResponseAnnouncesALengthButCarriesNoBodyAndTheConnectionStaysInStep() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("HEAD /orders HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Response head = client.readHeadResponse();
            assertThat(head.status()).isEqualTo(200);
            assertThat(head.header("content-length")).isEqualTo("19");
            // Had the proxy sent a body (or a chunk terminator), this response would be misread.
            assertThat(client.get("/orders/after-head").bodyText()).isEqualTo("hello from backend\n");
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void anHttp10ClientGetsAChunkedBackendResponseDelimitedByClose() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /echo HTTP/1.0\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
            Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("transfer-encoding")).isNull();
            assertThat(response.bodyText()).isEqualTo("hello");
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void clientsWithoutAValidCertificateAreRefusedAtTheHandshake() throws Exception {
        assertRefused(null, HandshakeFailureReason.NO_CERTIFICATE);
        assertRefused(TestPki.clientOfAnotherRoot(ORDERS), HandshakeFailureReason.UNKNOWN_CA);
        assertRefused(fixture.pki().expiredClient(ORDERS), HandshakeFailureReason.EXPIRED);
        assertRefused(fixture.pki().notYetValidClient(ORDERS), HandshakeFailureReason.NOT_YET_VALID);
        assertRefused(fixture.pki().serverOnlyEkuClient(ORDERS), HandshakeFailureReason.BAD_EKU);
        // Names the JDK cannot read (it drops the whole extension) are refused, not served as a peer without them.
        assertRefused(TestPki.clientWithRawUris(fixture.pki().root(), ORDERS, "https://orders.prod.test/a b"),
                HandshakeFailureReason.OTHER);
        assertThat(fixture.backend().nextRequest(100, TimeUnit.MILLISECONDS)).isNull();
    }

    @Test
    void aClientWhoseNamesAreMalformedIsRefusedAtTheHandshake() throws Exception {
        // The JDK reads these names without complaint; a C string would read the first as admin.prod.test.
        assertRefused(TestPki.clientWithRawSans(fixture.pki().root(), GeneralName.dNSName,
                "admin.prod.test\0.evil.test"), HandshakeFailureReason.OTHER);
        assertRefused(TestPki.clientWithRawSans(fixture.pki().root(), GeneralName.uniformResourceIdentifier,
                "spiffe://prod.test/ns/shop/sa/orders\u00e9"), HandshakeFailureReason.OTHER);
        assertThat(fixture.backend().nextRequest(100, TimeUnit.MILLISECONDS)).isNull();
    }

    @Test
    void aCertificateTheProxyHasAlreadyVerifiedIsWorthNothingWithoutItsPrivateKey() throws Exception {
        // The proxy remembers chains it verified; a copy of the certificate must still not pass the handshake.
        X509Bundle orders = fixture.pki().client(ORDERS);
        try (MtlsClient owner = fixture.connect(orders)) {
            assertThat(owner.get("/orders/1").status()).isEqualTo(200);
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/orders/1");
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        X509Bundle copy = X509Bundle.fromCertificatePath(orders.getCertificatePath(),
                fixture.pki().root().getCertificate(), generator.generateKeyPair());

        assertRefused(copy, HandshakeFailureReason.BAD_SIGNATURE);
        assertThat(fixture.backend().nextRequest(300, TimeUnit.MILLISECONDS)).isNull();
    }

    @Test
    void onlyTheFirstTenCertificatesAClientSendsAreRead() throws Exception {
        // netty-tcnative hands the verifier no more than its verify depth, 10: an eleventh is never seen.
        X509Bundle issuing = TestPki.intermediate(fixture.pki().root(), "issuing CA");
        X509Bundle orders = TestPki.issue(issuing, ORDERS, b -> b);
        List<X509Certificate> tenth = new ArrayList<>(List.of(orders.getCertificate()));
        for (int i = 0; i < 8; i++) {
            tenth.add(TestPki.newRoot("stranger " + i).getCertificate());
        }
        List<X509Certificate> eleventh = new ArrayList<>(tenth);
        eleventh.add(TestPki.newRoot("stranger 8").getCertificate());
        tenth.add(issuing.getCertificate());
        eleventh.add(issuing.getCertificate());

        try (MtlsClient client = presenting(orders, tenth)) {
            assertThat(client.get("/orders/1").status()).as("the issuing CA sent tenth").isEqualTo(200);
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/orders/1");
        double before = handshakeFailures(HandshakeFailureReason.UNKNOWN_CA);
        assertThat(catchThrowable(() -> {
            try (MtlsClient client = presenting(orders, eleventh)) {
                client.get("/orders/1");
            }
        })).as("the issuing CA sent eleventh").isInstanceOf(java.io.IOException.class);
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() ->
                assertThat(handshakeFailures(HandshakeFailureReason.UNKNOWN_CA)).isEqualTo(before + 1));
    }

    private static MtlsClient presenting(X509Bundle leaf, List<X509Certificate> chain) throws Exception {
        return MtlsClient.connect(fixture.proxy().address(), MtlsClient.clientContext(fixture.pki().root(),
                leaf.getKeyPair().getPrivate(), chain.toArray(X509Certificate[]::new)), null, null);
    }

    /**
     * With TLS 1.3 the client finishes its side of the handshake before the server has judged its certificate, so
     * the client only sees a failed read; the exact reason is asserted where it is decided, on the proxy.
     */
    private void assertRefused(X509Bundle certificate, HandshakeFailureReason reason) {
        double before = handshakeFailures(reason);
        Throwable failure = catchThrowable(() -> {
            try (MtlsClient client = fixture.connect(certificate)) {
                client.get("/orders");
            }
        });
        assertThat(failure).as("no HTTP response for %s", reason).isInstanceOf(java.io.IOException.class);
        await().atMost(Duration.ofSeconds(5))
                .untilAsserted(() -> assertThat(handshakeFailures(reason)).isEqualTo(before + 1));
    }

    private static double handshakeFailures(HandshakeFailureReason reason) {
        return fixture.proxy().count("mtls.proxy.tls.handshakes", "listener", "main", "result", "failure",
                "reason", reason.label());
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

    static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }
}
