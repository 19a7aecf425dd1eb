package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.SessionResumption;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.testing.MovableClock;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code sessionResumption}: off by default (no ticket is ever issued, so every connection is a full handshake with
 * the client chain validated), stateless tickets when asked for.
 */
class SessionResumptionTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    private void startProxy(SessionResumption resumption) {
        startProxy(resumption, Clock.systemUTC());
    }

    private void startProxy(SessionResumption resumption, Clock clock) {
        RunningProxy.Builder builder = RunningProxy.builder(fixture.pki())
                .clock(clock)
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders-api", "/orders", "shop", "orders");
        if (resumption != null) {
            builder.sessionResumption(resumption);
        }
        fixture.start(builder);
    }

    /**
     * One TLS 1.3 connection and request. Returns the creation time of the connection's TLS session: a resumed
     * session keeps that of the session it resumed, a full handshake makes a new one.
     */
    private long request(SSLContext client) throws Exception {
        long created;
        try (MtlsClient connection = MtlsClient.connect(fixture.proxy().address(), client, "TLSv1.3", null)) {
            // Reading the response also reads the tickets, which the server sends after the handshake.
            assertThat(connection.get("/orders/1").status()).isEqualTo(200);
            created = connection.session().getCreationTime();
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).headers().get("x-forwarded-client-cert"))
                .endsWith(";URI=" + ORDERS);
        // The next session, if new, is visibly younger.
        await().atMost(Duration.ofSeconds(1)).until(() -> System.currentTimeMillis() > created + 2);
        return created;
    }

    @Test
    void byDefaultEveryConnectionIsAFullHandshake() throws Exception {
        startProxy(null);
        SSLContext client = MtlsClient.clientContext(fixture.pki().root(), fixture.pki().client(ORDERS));
        long first = request(client);
        assertThat(request(client)).isGreaterThan(first);
    }

    @Test
    void withTicketsAClientResumesAndIsStillServedAsItsIdentity() throws Exception {
        startProxy(SessionResumption.TICKETS);
        SSLContext client = MtlsClient.clientContext(fixture.pki().root(), fixture.pki().client(ORDERS));
        long first = request(client);
        // The identity of the resumed connection comes from the session; request() checks the XFCC.
        assertThat(request(client)).isEqualTo(first);
    }

    @Test
    void aTicketDoesNotOutliveTheCertificateItsSessionWasMadeWith() throws Exception {
        // BoringSSL resumes a session whatever became of the certificate behind it, for as long as the ticket
        // lives (48 hours, renewed by each resumption in TLS 1.3): an hour-long SVID would be good for days.
        Instant now = Instant.now();
        MovableClock clock = new MovableClock(now);
        startProxy(SessionResumption.TICKETS, clock);
        X509Bundle shortLived = fixture.pki().client(ORDERS, b -> b
                .notBefore(now.minus(Duration.ofMinutes(5)))
                .notAfter(now.plus(Duration.ofHours(1))));
        SSLContext client = MtlsClient.clientContext(fixture.pki().root(), shortLived);
        long first = request(client);
        assertThat(request(client)).as("resumed while the certificate is valid").isEqualTo(first);

        clock.advance(Duration.ofHours(2));
        Map<String, Double> before = fixture.proxy().handshakeFailures();

        assertThatThrownBy(() -> {
            try (MtlsClient again = MtlsClient.connect(fixture.proxy().address(), client, "TLSv1.3", null)) {
                again.get("/orders/1");
            }
        }).as("the resumed connection is closed before any request").isInstanceOf(IOException.class);
        assertThat(fixture.proxy().awaitNewHandshakeFailure(before)).isEqualTo("expired");
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
    }

    @Test
    void aReloadMakesEveryEarlierTicketUselessSoARevokedClientCannotResumeIntoService() throws Exception {
        startProxy(SessionResumption.TICKETS);
        X509Bundle certificate = fixture.pki().client(ORDERS);
        SSLContext client = MtlsClient.clientContext(fixture.pki().root(), certificate);
        Path crl = fixture.pki().write("clients.crl", fixture.pki().rootCrl());
        fixture.proxy().reload(c -> c.withTrustAnchors(Map.of(TestPki.ANCHOR,
                new TrustAnchorConfig(fixture.pki().caPem(), List.of(crl), null, null))));
        long first = request(client);
        assertThat(request(client)).as("resumed before the reload").isEqualTo(first);

        fixture.pki().write("clients.crl", fixture.pki().rootCrl(certificate.getCertificate()));
        fixture.proxy().reload(c -> c);

        assertThatThrownBy(() -> {
            try (MtlsClient again = MtlsClient.connect(fixture.proxy().address(), client, "TLSv1.3", null)) {
                again.get("/orders/1");
            }
        }).as("the ticket is not honoured: a full handshake, and the chain is revoked now").isNotNull();
        assertThat(fixture.proxy().count("mtls.proxy.tls.handshakes", "reason", "revoked")).isEqualTo(1);
    }
}
