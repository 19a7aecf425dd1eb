package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.math.BigInteger;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Revocation reaches connections that are already open: a reload closes those whose chain no longer passes. */
class LiveRevocationTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .backend("shop", backend.url())
            .route("orders-api", "/orders", "shop", "orders"));

    @RegisterExtension
    final LogCapture log = LogCapture.of(Reverification.class);

    /** The test CA's anchor with a CRL file. */
    private ProxyConfig withCrl(ProxyConfig config, Path file) {
        return config.withTrustAnchors(Map.of(TestPki.ANCHOR, new TrustAnchorConfig(fixture.pki().caPem(),
                List.of(file), null, null)));
    }

    @Test
    void aClientAddedToTheCrlHasItsOpenConnectionClosedWithinASecondOfTheReload() throws Exception {
        X509Bundle revoked = fixture.pki().client(ORDERS);
        X509Bundle kept = fixture.pki().client(ORDERS);
        Path crlFile = fixture.pki().write("clients.crl", fixture.pki().rootCrl());
        fixture.proxy().reload(c -> withCrl(c, crlFile));
        try (MtlsClient victim = fixture.connect(revoked); MtlsClient bystander = fixture.connect(kept)) {
            assertThat(victim.get("/orders").status()).isEqualTo(200);
            assertThat(bystander.get("/orders").status()).isEqualTo(200);

            fixture.pki().write("clients.crl", fixture.pki().rootCrl(revoked.getCertificate()));
            long reloaded = System.nanoTime();
            fixture.proxy().reload(c -> c);

            assertThat(victim.closedWithin(1_000)).as("closed within a second of the reload").isTrue();
            assertThat((System.nanoTime() - reloaded) / 1_000_000).isLessThan(1_000);
            assertThat(bystander.get("/orders").status()).as("other clients keep their connection").isEqualTo(200);
        }
        assertThat(catchThrowable(() -> {
            try (MtlsClient again = fixture.connect(revoked)) {
                again.get("/orders");
            }
        })).as("a new handshake is refused").isNotNull();
        assertThat(fixture.proxy().count("mtls.proxy.tls.handshakes", "reason", "revoked")).isEqualTo(1);
    }

    @Test
    void aClientThatStallsItsHandshakeAcrossTheReloadIsJudgedByTheNewCrl() throws Exception {
        X509Bundle revoked = fixture.pki().client(ORDERS);
        Path crlFile = fixture.pki().write("clients.crl", fixture.pki().rootCrl());
        fixture.proxy().reload(c -> withCrl(c, crlFile));
        CountDownLatch askedForCertificate = new CountDownLatch(1);
        CountDownLatch resume = new CountDownLatch(1);
        SSLContext stalling = MtlsClient.clientContext(fixture.pki().root(), revoked, () -> {
            askedForCertificate.countDown();
            try {
                resume.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        CompletableFuture<MtlsClient> handshake = CompletableFuture.supplyAsync(() -> {
            try {
                return MtlsClient.connect(fixture.proxy().address(), stalling, null, null);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        assertThat(askedForCertificate.await(10, TimeUnit.SECONDS)).as("the proxy asked for a certificate").isTrue();

        // Accepted under the old CRL; the certificate is revoked while the client holds its handshake open.
        fixture.pki().write("clients.crl", fixture.pki().rootCrl(revoked.getCertificate()));
        fixture.proxy().reload(c -> c);
        resume.countDown();

        // TLS 1.3: the client's side of the handshake completes before the proxy has judged its certificate.
        try (MtlsClient client = handshake.get(10, TimeUnit.SECONDS)) {
            assertThat(catchThrowable(() -> client.get("/orders")))
                    .as("the request is never answered: the connection is closed").isNotNull();
        }
    }

    @Test
    void aDenyListedFingerprintClosesTheOpenConnection() throws Exception {
        X509Bundle compromised = fixture.pki().client(ORDERS);
        try (MtlsClient client = fixture.connect(compromised)) {
            assertThat(client.get("/orders").status()).isEqualTo(200);
            String fingerprint = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                    .digest(compromised.getCertificate().getEncoded()));

            fixture.proxy().reload(c -> c.withRevocation(new RevocationConfig(null, List.of(fingerprint), null)));

            assertThat(client.closedWithin(1_000)).isTrue();
        }
    }

    @Test
    void aDenyListedNegativeSerialIsMatchedAsTheLogAndOpensslWriteIt() throws Exception {
        // RFC 5280 wants a positive serial; some CAs issue negative ones all the same, and the handshake accepts them.
        BigInteger negative = new BigInteger("-4f1a09c3", 16);
        X509Bundle compromised = TestPki.issue(fixture.pki().root(), ORDERS, b -> b.serial(negative));
        try (MtlsClient client = fixture.connect(compromised)) {
            assertThat(client.get("/orders").status()).isEqualTo(200);

            fixture.proxy().reload(c -> c.withRevocation(new RevocationConfig(List.of("-4F:1A:09:C3"), null, null)));

            assertThat(client.closedWithin(1_000)).as("closed by the reload").isTrue();
        }
        assertThat(catchThrowable(() -> {
            try (MtlsClient again = fixture.connect(compromised)) {
                again.get("/orders");
            }
        })).as("a new handshake is refused").isNotNull();
        assertThat(fixture.proxy().count("mtls.proxy.tls.handshakes", "reason", "revoked")).isEqualTo(1);
        try (MtlsClient positive = fixture.connect(TestPki.issue(fixture.pki().root(), ORDERS,
                b -> b.serial(negative.negate())))) {
            assertThat(positive.get("/orders").status()).as("4f:1a:09:c3 is another serial").isEqualTo(200);
        }
    }

    @Test
    void removingTheClientsCaFromTheBundleClosesItsOpenConnection() throws Exception {
        X509Bundle otherRoot = TestPki.newRoot("second root");
        fixture.pki().write("ca.pem", fixture.pki().root().getCertificatePEM() + otherRoot.getCertificatePEM());
        fixture.proxy().reload(c -> c);
        try (MtlsClient fromOther = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(),
                TestPki.clientOf(otherRoot, ORDERS)); MtlsClient fromRoot = fixture.connect(ORDERS)) {
            assertThat(fromOther.get("/orders").status()).isEqualTo(200);

            fixture.pki().write("ca.pem", fixture.pki().root().getCertificatePEM());
            fixture.proxy().reload(c -> c);

            assertThat(fromOther.closedWithin(1_000)).isTrue();
            assertThat(fromRoot.get("/orders").status()).isEqualTo(200);
        }
    }

    @Test
    void movingTheClientsCaToAnotherAnchorClosesItsOpenConnection() throws Exception {
        Path corpRoot = fixture.pki().writeCa("corp-2.pem", TestPki.newRoot("corp root 2"));
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/orders").status()).isEqualTo(200);

            // The test CA stays trusted, but as a partner's anchor: it no longer speaks for names scoped to ours.
            fixture.proxy().reload(c -> c
                    .withTrustAnchors(Map.of(TestPki.ANCHOR, new TrustAnchorConfig(corpRoot, null, null, null),
                            "partners", new TrustAnchorConfig(fixture.pki().caPem(), null, null, null)))
                    .withIdentities(Map.of("orders", IdentityConfig.spiffe(ORDERS).withTrustAnchor(TestPki.ANCHOR))));

            assertThat(client.closedWithin(1_000)).as("attributed to the old anchor, so closed").isTrue();
        }
        try (MtlsClient again = fixture.connect(ORDERS)) {
            assertThat(again.get("/orders").status()).as("a new connection is the partners' now").isEqualTo(403);
        }
    }

    @Test
    void aCaNameHoldingAQuoteAndANewlineStaysInsideTheDetailOfTheClosingLine() throws Exception {
        // A CA chooses its own name, and the line that closes a revoked client's connection quotes it.
        X509Bundle issuing = TestPki.intermediate(fixture.pki().root(), "ops \\\"team\\\"\nevent=forged reason=none");
        X509Bundle revoked = TestPki.issue(issuing, ORDERS, b -> b);
        SSLContext sendsItsChain = MtlsClient.clientContext(fixture.pki().root(), revoked.getKeyPair().getPrivate(),
                revoked.getCertificate(), issuing.getCertificate());
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), sendsItsChain, null, null)) {
            assertThat(client.get("/orders").status()).isEqualTo(200);

            Instant now = Instant.now();
            Path rootCrl = fixture.pki().write("root.crl", fixture.pki().rootCrl());
            Path issuingCrl = fixture.pki().write("issuing.crl", TestPki.crl(issuing,
                    now.minus(Duration.ofMinutes(1)), now.plus(Duration.ofDays(1)), revoked.getCertificate()));
            fixture.proxy().reload(c -> c.withTrustAnchors(Map.of(TestPki.ANCHOR,
                    new TrustAnchorConfig(fixture.pki().caPem(), List.of(rootCrl, issuingCrl), null, null))));

            assertThat(client.closedWithin(1_000)).isTrue();
        }
        String line = log.await("event=connection_closed", "reason=revoked");
        assertThat(line).as("one line, every field where it was")
                .matches("event=connection_closed listener=\\S+ remote=\\S+ reason=revoked detail=\"[^\"\\p{Cntrl}]*\""
                        + " cause=reload")
                .contains("CN=ops \\'team\\'\\x0aevent\\=forged reason\\=none,O=mtls-proxy tests");
    }
}
