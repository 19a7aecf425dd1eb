package dev.mtlsproxy.core.tls;

import static dev.mtlsproxy.core.tls.Rejections.rejection;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import dev.mtlsproxy.config.CrlScope;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.StaleCrlPolicy;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.testing.MovableClock;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A workload reconnects with the same chain; the verifier keeps what it derived from it. Each test shows a check that
 * must still run on a kept chain (dates, revocation, the exact bytes), or that keeping it is what happens.
 */
class VerifiedChainsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static Instant now;
    static X509Bundle intermediate;
    static X509Bundle viaIntermediate;

    @BeforeAll
    static void mint() {
        pki = TestPki.create(dir);
        now = Instant.now();
        intermediate = TestPki.intermediate(pki.root(), "test intermediate CA");
        viaIntermediate = TestPki.clientOf(intermediate, ORDERS);
    }

    @Test
    void theSameBytesPresentedAgainShareOneVerifiedChainAndItsIdentity() throws Exception {
        ClientCertificateVerifier verifier = verifier(new MovableClock(now), RevocationChecker.NONE);
        X509Bundle orders = pki.client(ORDERS);

        VerifiedChain first = verifier.verified(parsedAnew(orders));
        VerifiedChain second = verifier.verified(parsedAnew(orders));

        assertThat(second).isSameAs(first);
        assertThat(verifier.recall(parsedAnew(orders))).isSameAs(first);
        assertThat(first.identity().spiffeId()).isEqualTo(ORDERS);
        assertThat(first.identity().trustAnchor()).isEqualTo("clients");
    }

    @Test
    void aKeptChainIsRefusedOnceItsLeafExpires() throws Exception {
        MovableClock clock = new MovableClock(now);
        ClientCertificateVerifier verifier = verifier(clock, RevocationChecker.NONE);
        X509Bundle orders = pki.client(ORDERS); // valid until about now + 12h
        verifier.verify(parsedAnew(orders));

        clock.set(now.plus(Duration.ofHours(13)));

        assertThat(rejection(verifier, parsedAnew(orders))).isEqualTo(HandshakeFailureReason.EXPIRED);
    }

    @Test
    void aKeptChainIsRefusedOnceItsIntermediateExpiresBeforeItsLeaf() throws Exception {
        MovableClock clock = new MovableClock(now);
        ClientCertificateVerifier verifier = verifier(clock, RevocationChecker.NONE);
        X509Bundle shortLived = TestPki.intermediate(pki.root(), "short-lived intermediate"); // about now + 2 days
        X509Bundle leaf = TestPki.issue(shortLived, ORDERS, b -> b.notAfter(now.plus(Duration.ofDays(5))));
        verifier.verify(parsedAnew(leaf, shortLived));

        clock.set(now.plus(Duration.ofDays(3)));

        assertThat(rejection(verifier, parsedAnew(leaf, shortLived))).isEqualTo(HandshakeFailureReason.EXPIRED);
    }

    @Test
    void aKeptChainIsCheckedForRevocationAtEveryHandshake() throws Exception {
        MovableClock clock = new MovableClock(now);
        Path crl = Files.writeString(Files.createTempDirectory(dir, "crl").resolve("root.crl"),
                TestPki.crl(pki.root(), now.minus(Duration.ofMinutes(5)), now.plus(Duration.ofHours(1))));
        RevocationChecker revocation = RevocationChecker.load(
                Map.of("clients", new TrustAnchorConfig(pki.caPem(), List.of(crl), CrlScope.CHAIN,
                        StaleCrlPolicy.DENY)),
                RevocationConfig.NONE, (issuer, nextUpdate) -> { }, clock);
        ClientCertificateVerifier verifier = verifier(clock, revocation);
        X509Bundle orders = pki.client(ORDERS);
        verifier.verify(parsedAnew(orders));

        clock.set(now.plus(Duration.ofHours(2))); // the leaf is still valid; the CRL is stale

        assertThat(rejection(verifier, parsedAnew(orders))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void theLeafAloneIsNotTheChainThatPassedWithItsIntermediate() throws Exception {
        ClientCertificateVerifier verifier = verifier(new MovableClock(now), RevocationChecker.NONE);
        verifier.verify(parsedAnew(viaIntermediate, intermediate));

        assertThat(rejection(verifier, parsedAnew(viaIntermediate))).isEqualTo(HandshakeFailureReason.UNKNOWN_CA);
    }

    @Test
    void aRefusalIsNotKept() throws Exception {
        MovableClock clock = new MovableClock(now.minus(Duration.ofHours(2)));
        ClientCertificateVerifier verifier = verifier(clock, RevocationChecker.NONE);
        X509Bundle orders = pki.client(ORDERS); // valid from about now - 1h
        assertThat(rejection(verifier, parsedAnew(orders))).isEqualTo(HandshakeFailureReason.NOT_YET_VALID);

        clock.set(now);

        assertThatCode(() -> verifier.verify(parsedAnew(orders))).doesNotThrowAnyException();
    }

    @Test
    void aChainTheVerifierNeverPassedIsNotRecalled() throws Exception {
        ClientCertificateVerifier verifier = verifier(new MovableClock(now), RevocationChecker.NONE);
        X509Bundle untrusted = TestPki.clientOfAnotherRoot(ORDERS);
        rejection(verifier, parsedAnew(untrusted));

        assertThat(verifier.recall(parsedAnew(untrusted))).isNull();
        assertThat(verifier.recall(parsedAnew(pki.client(ORDERS)))).isNull();
    }

    @Test
    void theCacheHoldsAtMostItsCapacity() throws Exception {
        VerifiedChains chains = new VerifiedChains();
        X509Bundle[] distinct = new X509Bundle[VerifiedChains.CAPACITY + 10];
        for (int i = 0; i < distinct.length; i++) {
            distinct[i] = pki.client(ORDERS + "-" + i);
            X509Certificate[] chain = parsedAnew(distinct[i]);
            chains.put(VerifiedChains.keyOf(chain), VerifiedChain.of(chain, List.of(chain[0]),
                    pki.root().getCertificate(), "clients", null));
        }

        assertThat(chains.size()).isEqualTo(VerifiedChains.CAPACITY);
    }

    // ---- fixtures ----------------------------------------------------------------------------------------------

    private static ClientCertificateVerifier verifier(Clock clock, RevocationChecker revocation) {
        X509Certificate root = pki.root().getCertificate();
        return new ClientCertificateVerifier(List.of(root), Map.of(root, "clients"), revocation, clock);
    }

    /** New certificate objects from the same DER, as a new handshake hands them over. */
    private static X509Certificate[] parsedAnew(X509Bundle... bundles) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        X509Certificate[] chain = new X509Certificate[bundles.length];
        for (int i = 0; i < bundles.length; i++) {
            chain[i] = (X509Certificate) factory.generateCertificate(
                    new ByteArrayInputStream(bundles[i].getCertificate().getEncoded()));
        }
        return chain;
    }
}
