package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.metrics.ProxyMetrics.CertificateExpiry;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.net.Socket;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** After a known sequence of clients, every counter holds exactly what happened; nothing is double-counted. */
class ProxyMetricsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING = "spiffe://prod.test/ns/shop/sa/billing";

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .identity("billing", BILLING)
            .backend("shop", backend.url())
            .backend("down", "http://127.0.0.1:1")
            .route("orders-api", "/orders", "shop", "orders")
            .route("broken", "/broken", "down", "orders")
            .route("slow", "/slow", "shop", "orders"));

    @Test
    void countersMatchAKnownSequenceExactly() throws Exception {
        try (MtlsClient orders = fixture.connect(ORDERS)) {
            assertThat(orders.get("/orders/1").status()).isEqualTo(200);
            assertThat(orders.get("/orders/2").status()).isEqualTo(200);
            assertThat(orders.get("/broken").status()).isEqualTo(502);
        }
        try (MtlsClient billing = fixture.connect(BILLING)) {
            assertThat(billing.get("/orders/1").status()).isEqualTo(403);
            assertThat(billing.get("/nowhere").status()).isEqualTo(404);
        }
        refused(null);
        refused(TestPki.clientOfAnotherRoot(ORDERS));
        refused(fixture.pki().expiredClient(ORDERS));

        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> {
            assertThat(handshakes("failure", "no_certificate")).isEqualTo(1);
            assertThat(handshakes("failure", "unknown_ca")).isEqualTo(1);
            assertThat(handshakes("failure", "expired")).isEqualTo(1);
            assertThat(handshakes("success", "none")).isEqualTo(2);
            assertThat(fixture.proxy().metrics().get("mtls.proxy.connections.open").gauge().value()).isZero();
        });
        assertThat(handshakes("failure", "bad_eku")).isZero();
        assertThat(requests("orders-api", "2xx", "allow")).isEqualTo(2);
        assertThat(requests("broken", "5xx", "allow")).isEqualTo(1);
        assertThat(requests("orders-api", "4xx", "deny")).isEqualTo(1);
        assertThat(requests("-", "4xx", "no_route")).isEqualTo(1);
        assertThat(fixture.proxy().count("mtls.proxy.authz.decisions", "route", "orders-api", "decision", "deny",
                "rule", "default-deny")).isEqualTo(1);
        assertThat(fixture.proxy().count("mtls.proxy.authz.decisions", "route", "orders-api", "decision", "allow",
                "rule", "rule-1")).isEqualTo(2);
        assertThat(fixture.proxy().count("mtls.proxy.backend.connect.errors", "backend", "down", "reason", "refused"))
                .isEqualTo(1);
        assertThat(fixture.proxy().count("mtls.proxy.backend.requests", "backend", "shop", "result", "ok"))
                .isEqualTo(2);
        assertThat(fixture.proxy().metrics().get("mtls.proxy.backend.healthy.endpoints").tag("backend", "down").gauge()
                .value()).isZero();
        assertThat(fixture.proxy().metrics().get("mtls.proxy.backend.healthy.endpoints").tag("backend", "shop").gauge()
                .value()).isEqualTo(1);
        assertThat(fixture.proxy().count("mtls.proxy.connections.accepted", "listener", "main")).isEqualTo(5);
        assertThat(fixture.proxy().metrics().get("mtls.proxy.client.certificate.remaining").tag("identity", "orders")
                .summary().count()).isEqualTo(1);
        assertThat(fixture.proxy().metrics().get("mtls.proxy.requests.in.flight").gauge().value()).isZero();
    }

    @Test
    void aConnectionClosedBeforeItsHandshakeIsDoneIsCountedAsClientClosedNotOther() throws Exception {
        try (Socket probe = new Socket()) {
            probe.connect(fixture.proxy().address()); // a load balancer's TCP health check: connect, hang up
        }
        try (Socket quitter = new Socket()) {
            quitter.connect(fixture.proxy().address());
            // the start of a ClientHello record, then nothing
            quitter.getOutputStream().write(new byte[] {0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00});
            quitter.getOutputStream().flush();
        }

        await().atMost(Duration.ofSeconds(5))
                .untilAsserted(() -> assertThat(handshakes("failure", "client_closed")).isEqualTo(2));
        assertThat(handshakes("failure", "other")).isZero();
    }

    @Test
    void aClientThatLeavesBeforeItsResponseKeepsItsDecisionWithStatusClassNone() throws Exception {
        try (MtlsClient orders = fixture.connect(ORDERS)) {
            orders.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            fixture.backend().nextRequest(5, java.util.concurrent.TimeUnit.SECONDS);
        }

        var entry = fixture.proxy().accessLog().poll(5, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(entry).isNotNull();
        // docs/METRICS.md: decision is one of a closed set; a connection closed before a response is status_class
        // none (status 0 in the access log), and the decision stays what the policy decided.
        assertThat(entry.decision()).isEqualTo("allow");
        assertThat(entry.status()).isZero();
        assertThat(requests("slow", "none", "allow")).isEqualTo(1);
        assertThat(fixture.proxy().metrics().get("mtls.proxy.requests.in.flight").gauge().value()).isZero();
    }

    @Test
    void certificateExpiryIsExportedForTheServerAndEveryCa() {
        assertThat(fixture.proxy().metrics().get("mtls.proxy.certificate.expiry.timestamp")
                .tags("role", "server", "listener", "main", "index", "0").gauge().value())
                .isGreaterThan(java.time.Instant.now().getEpochSecond());
        assertThat(fixture.proxy().metrics().get("mtls.proxy.certificate.expiry.timestamp")
                .tags("role", "client_ca", "listener", "main", "index", "0").gauge().value())
                .isEqualTo(fixture.pki().root().getCertificate().getNotAfter().toInstant().getEpochSecond());
    }

    @Test
    void aNewGenerationMovesTheGaugesInsteadOfKeepingTheFirstValues() {
        var metrics = new ProxyMetrics(new SimpleMeterRegistry());
        metrics.configLoaded(1, 100);
        metrics.certificates(List.of(
                new CertificateExpiry("server", "main", 0, 1_000),
                new CertificateExpiry("client_ca", "main", 0, 2_000)));

        metrics.configLoaded(2, 200);
        metrics.certificates(List.of(
                new CertificateExpiry("server", "main", 0, 5_000)));

        var registry = metrics.registry();
        assertThat(registry.get("mtls.proxy.config.generation").gauge().value()).isEqualTo(2);
        assertThat(registry.get("mtls.proxy.config.last.reload.success.timestamp").gauge().value()).isEqualTo(200);
        assertThat(registry.get("mtls.proxy.certificate.expiry.timestamp").tag("role", "server").gauge().value())
                .isEqualTo(5_000);
        assertThat(registry.find("mtls.proxy.certificate.expiry.timestamp").tag("role", "client_ca").gauge())
                .as("a certificate no longer in use has no gauge").isNull();
    }

    private double handshakes(String result, String reason) {
        return fixture.proxy().count("mtls.proxy.tls.handshakes", "listener", "main", "result", result, "reason",
                reason);
    }

    private double requests(String route, String statusClass, String decision) {
        return fixture.proxy().count("mtls.proxy.requests", "route", route, "status_class", statusClass, "decision",
                decision);
    }

    private void refused(X509Bundle certificate) {
        Throwable failure = catchThrowable(() -> {
            try (MtlsClient client = fixture.connect(certificate)) {
                client.get("/orders");
            }
        });
        assertThat(failure).isInstanceOf(java.io.IOException.class);
    }
}
