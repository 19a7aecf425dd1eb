package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.net.URI;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A CA below another whose name constraints permit only names the other's do not (a partner's CA for
 * {@code partner.test} that delegated {@code backend.test}): RFC 5280 leaves no name of that type permitted below
 * both. JDK 17's path validator throws a RuntimeException on such a path instead of refusing it, which
 * netty-tcnative reported as "General OpenSslEngine problem", on a 502's log line and as a client's handshake
 * failure alike. Both sides now refuse it and say which CAs.
 */
class DisjointNameConstraintsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String WHY = " permit no name of one type in common";

    @RegisterExtension
    static final LogCapture backendLog = LogCapture.of(ForwardingHandler.class);
    @RegisterExtension
    static final LogCapture handshakeLog = LogCapture.of(IdentityHandler.class);

    /** A backend for orders.backend.test, under a backend.test CA under a partner.test CA under the test root. */
    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture(
            pki -> {
                X509Bundle partner = TestPki.dnsConstrainedIntermediate(pki.root(), "partner CA", "partner.test");
                X509Bundle ours = TestPki.dnsConstrainedIntermediate(partner, "backend CA", "backend.test");
                return TestBackend.start(TestBackend.tlsContext(pki.backendServerIssuedBy(ours, "orders-api",
                        b -> b.addSanDnsName("orders.backend.test")), null));
            },
            (pki, backend) -> RunningProxy.builder(pki)
                    .identity("orders", ORDERS)
                    .backend("orders-api", BackendConfig.of(List.of(URI.create(backend.url())),
                            BackendTlsConfig.trusting(pki.caPem()).withServerName("orders.backend.test")))
                    .route("orders", "/orders", "orders-api", "orders"));

    @Test
    void aBackendChainThroughCasPermittingDisjointNamesIsA502ThatNamesThem() throws Exception {
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(),
                fixture.pki().client(ORDERS))) {
            assertThat(client.get("/orders").status()).isEqualTo(502);
        }

        assertThat(backendLog.await("backend=orders-api", "status=502"))
                .contains("cause=\"backend certificate not trusted: the name constraints of CN=backend CA,"
                        + "O=mtls-proxy tests and CN=partner CA,O=mtls-proxy tests" + WHY + "\"");
        assertThat(fixture.proxy().count("mtls.proxy.backend.connect.errors", "backend", "orders-api", "reason", "tls"))
                .isEqualTo(1);
    }

    @Test
    void aClientChainThroughCasPermittingDisjointNamesIsRefusedWithThemNamed() throws Exception {
        X509Bundle partner = TestPki.nameConstrainedIntermediate(fixture.pki().root(), "partner CA", "partner.test");
        X509Bundle prod = TestPki.nameConstrainedIntermediate(partner, "prod CA", "prod.test");
        X509Bundle orders = TestPki.issue(prod, ORDERS, b -> b);
        double before = handshakeFailures(HandshakeFailureReason.NAME_CONSTRAINTS);

        // With TLS 1.3 the client finishes its side before the proxy judges its certificate: it sees a failed read.
        Throwable failure = catchThrowable(() -> {
            try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), MtlsClient.clientContext(
                    fixture.pki().root(), orders.getKeyPair().getPrivate(), new X509Certificate[] {
                        orders.getCertificate(), prod.getCertificate(), partner.getCertificate()}), null, null)) {
                client.get("/orders");
            }
        });

        assertThat(failure).isInstanceOf(IOException.class);
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() ->
                assertThat(handshakeFailures(HandshakeFailureReason.NAME_CONSTRAINTS)).isEqualTo(before + 1));
        assertThat(handshakeLog.await("\"event\":\"handshake_failed\"", "\"reason\":\"name_constraints\""))
                .contains("\"detail\":\"the name constraints of CN=prod CA,O=mtls-proxy tests and CN=partner CA,"
                        + "O=mtls-proxy tests" + WHY + "\"");
    }

    private static double handshakeFailures(HandshakeFailureReason reason) {
        return fixture.proxy().count("mtls.proxy.tls.handshakes", "listener", "main", "result", "failure",
                "reason", reason.label());
    }
}
