package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.pkitesting.X509Bundle;
import java.net.URI;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A reload either fails and leaves the running generation exactly as it was, health checks included, or succeeds
 * and says so, whatever goes wrong after the new generation went live.
 */
class ReloadStepsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    /** Every 50ms, in or out at the first result: the running check follows the backend at once. */
    static final HealthCheckConfig OFTEN =
            new HealthCheckConfig("/health", Duration.ofMillis(50), Duration.ofSeconds(2), 1, 1);

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    private BackendConfig checked(HealthCheckConfig check) {
        return BackendConfig.of(List.of(URI.create(fixture.backend().url())), null).withHealthCheck(check);
    }

    private RunningProxy.Builder shopWithOrders() {
        return RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", checked(OFTEN))
                .route("orders-api", "/orders", "shop", "orders");
    }

    private double healthyEndpoints(RunningProxy proxy, String backend) {
        return proxy.metrics().get("mtls.proxy.backend.healthy.endpoints").tag("backend", backend).gauge().value();
    }

    private int ordersStatus() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            return client.get("/orders").status();
        }
    }

    /**
     * Starting a health check only schedules it, so it fails only while the event loops shut down; here it fails
     * on an interval of zero, which the checker refuses to start (the validator rejects one in a file; reload takes
     * records). The handover had already stopped the old checks of the backend the reload rebuilt, and they stayed
     * stopped: the old generation served on with its verdicts frozen.
     */
    @Test
    void aHealthCheckThatCannotStartFailsTheReloadAndTheOldChecksGoOn() throws Exception {
        RunningProxy proxy = fixture.start(shopWithOrders());
        await().atMost(Duration.ofSeconds(5)).until(() -> fixture.backend().healthChecksAnswered(true) > 0);

        ReloadException e = catchThrowableOfType(ReloadException.class, () -> proxy.reload(c -> {
            Map<String, BackendConfig> backends = new LinkedHashMap<>();
            // Rebuilt (other thresholds), so the handover stops its old check; and one whose check cannot start.
            backends.put("shop", checked(OFTEN.withThresholds(2, 2)));
            backends.put("broken", checked(new HealthCheckConfig("/health", Duration.ZERO, Duration.ofSeconds(2),
                    1, 1)));
            return c.withBackends(backends);
        }));

        assertThat(e).isNotNull();
        assertThat(e.reason()).isEqualTo(ReloadFailureReason.OTHER);
        assertThat(proxy.server().generation()).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.config.reloads", "result", "failure", "reason", "other")).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.config.reloads", "result", "success")).isZero();

        fixture.backend().healthy(false);
        await("the old check sees the backend fail").atMost(Duration.ofSeconds(5))
                .until(() -> healthyEndpoints(proxy, "shop") == 0);
        assertThat(ordersStatus()).isEqualTo(503);

        fixture.backend().healthy(true);
        await("and come back").atMost(Duration.ofSeconds(5)).until(() -> healthyEndpoints(proxy, "shop") == 1);
        assertThat(ordersStatus()).isEqualTo(200);
    }

    /**
     * The registry refuses the new backend's health gauge, as Prometheus's does when a meter of that name was
     * registered with other labels. That step runs after the swap: the new generation serves, so the reload used to
     * throw while its route was answering, and skipped the re-verification of open connections.
     */
    @Test
    void aStepThatFailsAfterTheSwapIsLoggedAndCountedAndTheReloadStillSucceeds() throws Exception {
        SimpleMeterRegistry refusing = new SimpleMeterRegistry();
        refusing.config().meterFilter(new MeterFilter() {
            @Override
            public Meter.Id map(Meter.Id id) {
                if (id.getName().equals("mtls.proxy.backend.healthy.endpoints") && "extra".equals(id.getTag("backend"))) {
                    throw new IllegalArgumentException("a meter named mtls_proxy_backend_healthy_endpoints exists"
                            + " with other tag keys");
                }
                return id;
            }
        });
        RunningProxy proxy = fixture.start(shopWithOrders().registry(refusing));
        X509Bundle compromised = fixture.pki().client(ORDERS);
        String fingerprint = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(compromised.getCertificate().getEncoded()));

        try (LogCapture log = LogCapture.of(ProxyServer.class);
                MtlsClient open = fixture.connect(compromised)) {
            assertThat(open.get("/orders").status()).isEqualTo(200);

            long generation = proxy.reload(c -> withExtraBackend(c)
                    .withRevocation(new RevocationConfig(null, List.of(fingerprint), null)));

            assertThat(generation).isEqualTo(2);
            assertThat(proxy.server().generation()).isEqualTo(2);
            assertThat(log.await("event=reload_step_failed", "generation=2", "step=metrics"))
                    .contains("meaning=\"the new generation serves;")
                    .contains("cause=\"java.lang.IllegalArgumentException: a meter named");
            assertThat(proxy.count("mtls.proxy.config.reload.step.failures", "step", "metrics")).isEqualTo(1);
            assertThat(proxy.count("mtls.proxy.config.reloads", "result", "success")).isEqualTo(1);
            assertThat(proxy.metrics().get("mtls.proxy.config.generation").gauge().value()).isEqualTo(2);
            assertThat(open.closedWithin(1_000)).as("the steps after the failed one ran: the deny-list reached it")
                    .isTrue();
        }
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/extra").status()).as("the new generation's route").isEqualTo(200);
        }
    }

    private static ProxyConfig withExtraBackend(ProxyConfig c) {
        Map<String, BackendConfig> backends = new LinkedHashMap<>(c.backends());
        backends.put("extra", c.backends().get("shop").withHealthCheck(null));
        List<RouteConfig> routes = new ArrayList<>(c.routes());
        routes.add(new RouteConfig("extra-api", null, "/extra", List.of(), "extra", List.of("orders")));
        return c.withBackends(backends).withRoutes(routes);
    }
}
