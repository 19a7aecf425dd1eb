package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.Arrays;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A client trust anchor whose bundle holds an intermediate CA rather than a root, as Go's root pool allows: the
 * chain ends at that intermediate, which is held to its own path length; its name constraints, which the JDK does
 * not apply to a CA it starts from, are applied only when the bundle also holds its issuer (people paste whole
 * chains into CA files), and without it the CA vouches for nothing rather than for any name.
 */
class IntermediateTrustAnchorTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String OUTSIDER = "spiffe://partner.test/ns/shop/sa/orders";

    @RegisterExtension
    static final LogCapture log = LogCapture.of(IdentityHandler.class);

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    @Test
    void anIntermediatePinnedWithoutItsRootVouchesForTheChainsBelowIt() throws Exception {
        X509Bundle issuing = TestPki.intermediate(fixture.pki().root(), "issuing CA");
        X509Bundle orders = TestPki.issue(issuing, ORDERS, b -> b);
        start(issuing);

        assertThat(status(orders, issuing)).isEqualTo(200);
        // The CA is the anchor: a client need not send it.
        assertThat(status(orders)).isEqualTo(200);
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();
    }

    @Test
    void anIntermediatePinnedWithPathLengthZeroAllowsNoFurtherCaBelowIt() throws Exception {
        X509Bundle noFurtherCas = TestPki.intermediate(fixture.pki().root(), "issuing CA allowing no intermediates",
                b -> b.setPathLengthConstraint(OptionalInt.of(0)));
        X509Bundle oneTooMany = TestPki.intermediate(noFurtherCas, "one CA too many");
        start(noFurtherCas);

        assertThat(status(TestPki.issue(noFurtherCas, ORDERS, b -> b), noFurtherCas)).isEqualTo(200);
        assertRefused(HandshakeFailureReason.CHAIN_TOO_LONG, TestPki.issue(oneTooMany, ORDERS, b -> b), oneTooMany);
        assertThat(log.await("\"reason\":\"chain_too_long\"")).contains("more intermediates than the path length of"
                + " trusted CA CN=issuing CA allowing no intermediates,O=mtls-proxy tests allows");
    }

    @Test
    void aNameConstrainedIntermediatePinnedWithoutItsRootVouchesForNothingAndSaysWhy() throws Exception {
        X509Bundle delegated = TestPki.nameConstrainedIntermediate(fixture.pki().root(), "prod CA", "prod.test");
        start(delegated);

        // Within its constraints, and still refused: the JDK would apply none of them, so none is trusted to hold.
        assertRefused(HandshakeFailureReason.OTHER, TestPki.issue(delegated, ORDERS, b -> b), delegated);
        assertThat(log.await("\"reason\":\"other\"")).contains("the name constraints of trusted CA CN=prod CA,"
                + "O=mtls-proxy tests, which is not a root, cannot be applied (configure its root instead)");
    }

    @Test
    void aBundleHoldingANameConstrainedIntermediateAndItsRootHoldsChainsToItsConstraints() throws Exception {
        X509Bundle delegated = TestPki.nameConstrainedIntermediate(fixture.pki().root(), "prod CA", "prod.test");
        start(delegated, fixture.pki().root());

        assertThat(status(TestPki.issue(delegated, ORDERS, b -> b), delegated)).isEqualTo(200);
        assertThat(status(TestPki.issue(delegated, ORDERS, b -> b))).as("the intermediate is in the bundle")
                .isEqualTo(200);
        assertRefused(HandshakeFailureReason.NAME_CONSTRAINTS, TestPki.issue(delegated, OUTSIDER, b -> b), delegated);
        assertThat(log.await("\"reason\":\"name_constraints\"", OUTSIDER)).contains("name constraints");
    }

    private void start(X509Bundle... cas) {
        String bundle = Arrays.stream(cas).map(X509Bundle::getCertificatePEM).collect(Collectors.joining());
        Path file = fixture.pki().write("client-cas.pem", bundle);
        fixture.start(RunningProxy.builder(fixture.pki())
                .trustAnchor(TestPki.ANCHOR, new TrustAnchorConfig(file))
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders-api", "/orders", "shop", "orders"));
    }

    /** Presents the leaf followed by exactly {@code sent}. */
    private int status(X509Bundle leaf, X509Bundle... sent) throws Exception {
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), MtlsClient.clientContext(
                fixture.pki().root(), leaf.getKeyPair().getPrivate(), chain(leaf, sent)), null, null)) {
            return client.get("/orders").status();
        }
    }

    /**
     * With TLS 1.3 the client finishes its side of the handshake before the proxy has judged its certificate, so the
     * client only sees a failed read; the reason is asserted where it is decided.
     */
    private void assertRefused(HandshakeFailureReason reason, X509Bundle leaf, X509Bundle... sent) {
        double before = handshakeFailures(reason);
        Throwable failure = catchThrowable(() -> status(leaf, sent));
        assertThat(failure).as("no HTTP response for %s", reason).isInstanceOf(IOException.class);
        await().atMost(Duration.ofSeconds(5))
                .untilAsserted(() -> assertThat(handshakeFailures(reason)).isEqualTo(before + 1));
    }

    private double handshakeFailures(HandshakeFailureReason reason) {
        return fixture.proxy().count("mtls.proxy.tls.handshakes", "listener", "main", "result", "failure",
                "reason", reason.label());
    }

    private static X509Certificate[] chain(X509Bundle leaf, X509Bundle... above) {
        X509Certificate[] chain = new X509Certificate[above.length + 1];
        chain[0] = leaf.getCertificate();
        for (int i = 0; i < above.length; i++) {
            chain[i + 1] = above[i].getCertificate();
        }
        return chain;
    }
}
