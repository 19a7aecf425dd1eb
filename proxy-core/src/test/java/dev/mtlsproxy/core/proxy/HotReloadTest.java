package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.netty.pkitesting.X509Bundle;
import java.nio.file.Files;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Reloads while clients keep calling: certificates, CA bundles and policy change under load without a failed
 * request, and a reload that cannot be built changes nothing.
 */
class HotReloadTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING = "spiffe://prod.test/ns/shop/sa/billing";

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .identity("billing", BILLING)
            .backend("shop", backend.url())
            .route("orders-api", "/orders", "shop", "orders")
            .route("billing-api", "/billing", "shop", "billing"));

    /** The billing route allowing {@code allow}, everything else as configured. */
    private static ProxyConfig billingAllows(ProxyConfig config, String... allow) {
        List<RouteConfig> routes = new ArrayList<>();
        for (RouteConfig r : config.routes()) {
            routes.add(r.name().equals("billing-api")
                    ? new RouteConfig(r.name(), r.host(), r.pathPrefix(), r.methods(), r.backend(), List.of(allow))
                    : r);
        }
        return config.withRoutes(routes);
    }

    @Test
    @Timeout(180)
    void twentyRotationsOfServerCertificateCaBundleAndPolicyUnderLoadFailNoRequest() throws Exception {
        X509Bundle orders = fixture.pki().client(ORDERS);
        AtomicBoolean running = new AtomicBoolean(true);
        AtomicInteger succeeded = new AtomicInteger();
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        // One client opens a new connection (a new handshake) per request, the other keeps one connection.
        Thread perRequest = new Thread(() -> {
            while (running.get()) {
                try (MtlsClient client = fixture.connect(orders)) {
                    int status = client.get("/orders/1").status();
                    if (status == 200) {
                        succeeded.incrementAndGet();
                    } else {
                        failures.add("new connection: status " + status);
                    }
                } catch (Exception e) {
                    failures.add("new connection: " + e);
                }
            }
        }, "client-per-request");
        Thread keepAlive = new Thread(() -> {
            try (MtlsClient client = fixture.connect(orders)) {
                while (running.get()) {
                    int status = client.get("/orders/2").status();
                    if (status == 200) {
                        succeeded.incrementAndGet();
                    } else {
                        failures.add("keep-alive: status " + status);
                    }
                }
            } catch (Exception e) {
                failures.add("keep-alive: " + e);
            }
        }, "client-keep-alive");
        perRequest.start();
        keepAlive.start();

        X509Bundle previousRoot = null;
        try {
            for (int i = 1; i <= 20; i++) {
                X509Bundle server = fixture.pki().rotateServerCertificate();
                X509Bundle nextRoot = TestPki.newRoot("rotated root " + i);
                fixture.pki().write("ca.pem", fixture.pki().root().getCertificatePEM() + nextRoot.getCertificatePEM());
                boolean billingAllowed = i % 2 == 0;
                long generation = fixture.proxy().reload(c -> billingAllows(c, billingAllowed ? new String[] {"billing"}
                        : new String[0]));

                assertThat(generation).isEqualTo(i + 1L);
                try (MtlsClient client = fixture.connect(BILLING)) {
                    assertThat(client.serverCertificate()).as("rotation %d serves the new certificate", i)
                            .isEqualTo(server.getCertificate());
                    assertThat(client.get("/billing").status()).as("rotation %d policy", i)
                            .isEqualTo(billingAllowed ? 200 : 403);
                }
                try (MtlsClient client = fixture.connect(TestPki.clientOf(nextRoot, ORDERS))) {
                    assertThat(client.get("/orders/3").status()).as("rotation %d trusts the new CA", i)
                            .isEqualTo(200);
                }
                if (previousRoot != null) {
                    X509Bundle dropped = TestPki.clientOf(previousRoot, ORDERS);
                    assertThat(catchThrowable(() -> {
                        try (MtlsClient client = fixture.connect(dropped)) {
                            client.get("/orders/4");
                        }
                    })).as("rotation %d no longer trusts the CA it removed", i).isNotNull();
                }
                previousRoot = nextRoot;
            }
            int before = succeeded.get();
            await().atMost(Duration.ofSeconds(10)).until(() -> succeeded.get() > before + 10);
        } finally {
            running.set(false);
            perRequest.join(20_000);
            keepAlive.join(20_000);
        }

        assertThat(failures).isEmpty();
        assertThat(succeeded.get()).isGreaterThan(40);
        assertThat(fixture.proxy().count("mtls.proxy.config.reloads", "result", "success")).isEqualTo(20);
        assertThat(fixture.proxy().metrics().get("mtls.proxy.config.generation").gauge().value()).isEqualTo(21);
        assertThat(fixture.proxy().count("mtls.proxy.tls.handshakes", "reason",
                HandshakeFailureReason.UNKNOWN_CA.label())).isEqualTo(19);
    }

    @Test
    void aTruncatedCertificateLeavesTheOldGenerationServing() throws Exception {
        String pem = fixture.pki().newServerCertificate().getCertificatePEM();
        fixture.pki().write("server.pem", pem.substring(0, pem.length() / 2));

        ReloadException e = catchThrowableOfType(ReloadException.class, () -> fixture.proxy().reload(c -> c));

        assertThat(e.reason()).isEqualTo(ReloadFailureReason.TLS_MATERIAL);
        assertThat(e.getMessage()).contains(fixture.pki().serverCertificatePem().toString());
        assertStillServingGeneration1("tls_material");
    }

    @Test
    void aKeyThatDoesNotMatchItsCertificateLeavesTheOldGenerationServing() throws Exception {
        fixture.pki().write("server.pem", fixture.pki().newServerCertificate().getCertificatePEM());

        ReloadException e = catchThrowableOfType(ReloadException.class, () -> fixture.proxy().reload(c -> c));

        assertThat(e.reason()).isEqualTo(ReloadFailureReason.TLS_MATERIAL);
        assertThat(e.getMessage()).isEqualTo(fixture.pki().serverKeyPem() + ": not the private key of "
                + fixture.pki().serverCertificatePem());
        assertStillServingGeneration1("tls_material");
    }

    @Test
    void anUnreadableCaBundleLeavesTheOldGenerationServing() throws Exception {
        Files.delete(fixture.pki().caPem());

        ReloadException e = catchThrowableOfType(ReloadException.class, () -> fixture.proxy().reload(c -> c));

        assertThat(e.reason()).isEqualTo(ReloadFailureReason.TLS_MATERIAL);
        assertThat(e.getMessage()).contains(fixture.pki().caPem().toString()).contains("no such file");
        assertStillServingGeneration1("tls_material");
    }

    @Test
    void movingAListenerNeedsARestart() throws Exception {
        ReloadException e = catchThrowableOfType(ReloadException.class, () -> fixture.proxy().reload(c -> {
            ListenerConfig l = c.listeners().get(0);
            ListenerConfig moved = new ListenerConfig(l.name(), new HostPort("127.0.0.1", 1), l.tls(), l.limits(),
                    l.idleTimeout(), l.handshakeTimeout());
            return c.withListeners(List.of(moved));
        }));

        assertThat(e.reason()).isEqualTo(ReloadFailureReason.RESTART_REQUIRED);
        assertThat(e.problems()).containsExactly(
                "listeners[0].address: 127.0.0.1:1 needs a restart to change (running: 127.0.0.1:0)");
        assertStillServingGeneration1("restart_required");
    }

    @Test
    void aRemovedGrantDeniesTheNextRequestOnTheSameConnection() throws Exception {
        try (MtlsClient client = fixture.connect(BILLING)) {
            assertThat(client.get("/billing").status()).isEqualTo(200);

            fixture.proxy().reload(c -> billingAllows(c));

            assertThat(client.get("/billing").status()).isEqualTo(403);
            fixture.proxy().reload(c -> billingAllows(c, "billing"));
            assertThat(client.get("/billing").status()).isEqualTo(200);
        }
    }

    @Test
    void aClientSendingMoreCertificatesThanAreReadKeepsItsConnectionAcrossAReload() throws Exception {
        // Only the first ten certificates sent are read, and its path lies among them: the handshake accepted it, and
        // a reload that changes nothing about it must judge it alike, not by the eleven it sent.
        X509Bundle issuing = TestPki.intermediate(fixture.pki().root(), "issuing CA");
        X509Bundle orders = TestPki.issue(issuing, ORDERS, b -> b);
        List<X509Certificate> sent = new ArrayList<>(List.of(orders.getCertificate(), issuing.getCertificate()));
        for (int i = 0; i < 9; i++) {
            sent.add(TestPki.newRoot("stranger " + i).getCertificate());
        }
        SSLContext eleven = MtlsClient.clientContext(fixture.pki().root(), orders.getKeyPair().getPrivate(),
                sent.toArray(X509Certificate[]::new));
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), eleven, null, null)) {
            assertThat(client.get("/orders/1").status()).isEqualTo(200);

            fixture.proxy().reload(c -> billingAllows(c));

            assertThat(client.get("/orders/2").status()).isEqualTo(200);
        }
    }

    private void assertStillServingGeneration1(String failureReason) throws Exception {
        assertThat(fixture.proxy().server().generation()).isEqualTo(1);
        assertThat(fixture.proxy().metrics().get("mtls.proxy.config.generation").gauge().value()).isEqualTo(1);
        assertThat(fixture.proxy().count("mtls.proxy.config.reloads", "result", "failure", "reason", failureReason))
                .isEqualTo(1);
        assertThat(fixture.proxy().count("mtls.proxy.config.reloads", "result", "success")).isZero();
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/orders").status()).isEqualTo(200);
        }
    }
}
