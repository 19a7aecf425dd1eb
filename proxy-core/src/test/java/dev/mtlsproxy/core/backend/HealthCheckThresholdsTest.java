package dev.mtlsproxy.core.backend;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Health check thresholds against real backends on loopback, one round of checks at a time (each round a real
 * {@code GET /health} to every endpoint, counted before the next starts), so that "still in after two failures" is
 * observed, not raced. The proxy's own schedule is exercised end to end in BackendFailoverTest.
 */
class HealthCheckThresholdsTest {

    static final HealthCheckConfig RISE_2_FALL_3 =
            new HealthCheckConfig("/health", Duration.ofHours(1), Duration.ofSeconds(2), 2, 3);

    EventLoopGroup group;
    EventLoop loop;
    TestBackend a;
    TestBackend b;
    @RegisterExtension
    final LogCapture log = LogCapture.of(Endpoint.class);

    @BeforeEach
    void start() throws Exception {
        group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        loop = group.next();
        a = TestBackend.start();
        b = TestBackend.start();
    }

    @AfterEach
    void stop() throws Exception {
        a.close();
        b.close();
        group.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
    }

    private static BackendConfig shop(HealthCheckConfig check, TestBackend... endpoints) {
        return BackendConfig.of(List.of(endpoints).stream().map(e -> URI.create(e.url())).toList(), null)
                .withHealthCheck(check);
    }

    /** Runs {@code rounds} rounds of checks of every endpoint of {@code backend}, each counted before the next. */
    private void check(Backend backend, int rounds) throws Exception {
        HealthChecker checker = new HealthChecker(backend, backend.config().healthCheck());
        for (int i = 0; i < rounds; i++) {
            assertThat(checker.checkAll(loop, NioSocketChannel.class).await(5, TimeUnit.SECONDS))
                    .as("round %d counted", i + 1).isTrue();
        }
    }

    private static boolean inRotation(Backend backend, TestBackend endpoint) {
        Endpoint e = backend.endpoints().stream().filter(x -> x.address().getPort() == endpoint.port()).findFirst()
                .orElseThrow();
        return e.isActivelyHealthy() && e.isHealthy();
    }

    private List<String> healthEvents() {
        return log.lines().stream().filter(l -> l.startsWith("event=backend_health ")).toList();
    }

    @Test
    void aCheckSendsTheHostARequestWithoutOneGetsPortIncluded() throws Exception {
        Backend backend = Backend.build("shop", shop(RISE_2_FALL_3, a));

        check(backend, 1);

        assertThat(a.lastHealthCheckHost()).isEqualTo("127.0.0.1:" + a.port())
                .isEqualTo(backend.endpoints().get(0).hostHeader());
    }

    @Test
    void anEndpointStaysInRotationThroughFewerFailuresThanTheThresholdAndLeavesAtExactlyThat() throws Exception {
        Backend shop = Backend.build("shop", shop(RISE_2_FALL_3, a, b));
        check(shop, 1);
        a.healthy(false);

        check(shop, 1);
        assertThat(inRotation(shop, a)).as("after 1 failure").isTrue();
        check(shop, 1);
        assertThat(inRotation(shop, a)).as("after 2 failures").isTrue();
        assertThat(shop.healthyEndpoints()).isEqualTo(2);
        assertThat(healthEvents()).as("no state change, nothing logged").isEmpty();

        check(shop, 1);
        assertThat(inRotation(shop, a)).as("after 3 failures").isFalse();
        assertThat(shop.healthyEndpoints()).isEqualTo(1);
        for (int i = 0; i < 4; i++) {
            assertThat(shop.pick(List.of()).address().getPort()).isEqualTo(b.port());
        }
        assertThat(healthEvents()).containsExactly("event=backend_health backend=shop endpoint=127.0.0.1:"
                + a.port() + " healthy=false checks=3 cause=\"health check answered 503\"");
    }

    @Test
    void anEndpointComesBackOnlyAfterHealthyThresholdPassesInARow() throws Exception {
        Backend shop = Backend.build("shop", shop(RISE_2_FALL_3, a, b));
        a.healthy(false);
        check(shop, 1);
        assertThat(inRotation(shop, a)).as("out").isFalse();
        a.healthy(true);

        check(shop, 1);
        assertThat(inRotation(shop, a)).as("after 1 pass").isFalse();
        a.healthy(false);
        check(shop, 1);
        a.healthy(true);
        check(shop, 1);
        assertThat(inRotation(shop, a)).as("a failure in between starts the count again").isFalse();

        check(shop, 1);
        assertThat(inRotation(shop, a)).as("after 2 passes in a row").isTrue();
        assertThat(shop.healthyEndpoints()).isEqualTo(2);
        assertThat(healthEvents()).containsExactly(
                "event=backend_health backend=shop endpoint=127.0.0.1:" + a.port()
                        + " healthy=false checks=1 cause=\"health check answered 503\"",
                "event=backend_health backend=shop endpoint=127.0.0.1:" + a.port() + " healthy=true checks=2");
    }

    @Test
    void failuresInterleavedWithPassesNeverAddUp() throws Exception {
        Backend shop = Backend.build("shop", shop(RISE_2_FALL_3, a));
        for (boolean passes : new boolean[] {true, false, false, true, false, false, true, false, false}) {
            a.healthy(passes);
            check(shop, 1);
            assertThat(inRotation(shop, a)).isTrue();
        }
        assertThat(healthEvents()).isEmpty();
    }

    @Test
    void aNewEndpointIsInRotationBeforeItsFirstCheckAndThatCheckDecidesAtOnce() throws Exception {
        // How the proxy always started: in, then out at the first failed check (HAProxy's init-state up).
        Backend shop = Backend.build("shop", shop(RISE_2_FALL_3, a, b));
        assertThat(inRotation(shop, a)).as("before any check").isTrue();
        assertThat(shop.healthyEndpoints()).isEqualTo(2);

        a.healthy(false);
        check(shop, 1);

        assertThat(inRotation(shop, a)).isFalse();
        assertThat(inRotation(shop, b)).isTrue();
    }

    @Test
    void aTargetThatRefusesConnectionsCountsAsAFailedCheck() throws Exception {
        Backend shop = Backend.build("shop", shop(RISE_2_FALL_3, a, b));
        check(shop, 1);
        a.close();

        check(shop, 2);
        assertThat(inRotation(shop, a)).as("passive health aside, the active verdict holds").isTrue();
        check(shop, 1);
        assertThat(shop.endpoints().get(0).isActivelyHealthy()).isFalse();
        assertThat(log.await("healthy=false")).contains("checks=3 cause=\"connection refused\"");
    }

    @Test
    void aReloadThatRebuildsTheBackendKeepsTheVerdictOfEachEndpointItKeeps() throws Exception {
        Backend before = Backend.build("shop", shop(RISE_2_FALL_3, a));
        a.healthy(false);
        check(before, 1);
        assertThat(inRotation(before, a)).isFalse();

        // The same check on another schedule, with other thresholds, and another backend timeout: a new backend,
        // but the same endpoint, still out.
        HealthCheckConfig sameQuestion = new HealthCheckConfig("/health", Duration.ofMinutes(30),
                Duration.ofSeconds(1), 3, 1);
        BackendConfig changed = shop(sameQuestion, a, b)
                .withTimeouts(Duration.ofSeconds(1), Duration.ofSeconds(5), Duration.ofSeconds(5));
        Backend after = Backend.build("shop", changed, before);
        assertThat(after).isNotSameAs(before);
        assertThat(inRotation(after, a)).as("carried over, not back in").isFalse();
        assertThat(inRotation(after, b)).as("new in this generation: in until its first check").isTrue();

        a.healthy(true);
        check(after, 2);
        assertThat(inRotation(after, a)).as("the new healthyThreshold, 3, applies").isFalse();
        check(after, 1);
        assertThat(inRotation(after, a)).isTrue();
    }

    /**
     * A reload between the second and third of three passes needed used to start the count again, so reloads more
     * frequent than three checks (a controller rewriting a ConfigMap) kept an endpoint out for good.
     */
    @Test
    void aReloadThatKeepsTheQuestionAndTheThresholdsKeepsTheCountOfPassesTowardsComingBack() throws Exception {
        HealthCheckConfig rise3 = new HealthCheckConfig("/health", Duration.ofHours(1), Duration.ofSeconds(2), 3, 3);
        Backend before = Backend.build("shop", shop(rise3, a));
        a.healthy(false);
        check(before, 1);
        a.healthy(true);
        check(before, 2);
        assertThat(inRotation(before, a)).as("two passes of three").isFalse();

        // Another interval: a rebuilt backend asking the same question, counted against the same thresholds.
        Backend after = Backend.build("shop", shop(new HealthCheckConfig("/health", Duration.ofMinutes(30),
                Duration.ofSeconds(2), 3, 3), a), before);
        assertThat(after).isNotSameAs(before);

        check(after, 1);
        assertThat(inRotation(after, a)).as("the third pass in a row, the first after the reload").isTrue();
        assertThat(healthEvents()).last().isEqualTo("event=backend_health backend=shop endpoint=127.0.0.1:"
                + a.port() + " healthy=true checks=3");
    }

    @Test
    void aReloadThatKeepsTheQuestionAndTheThresholdsKeepsTheCountOfFailuresTowardsGoingOut() throws Exception {
        Backend before = Backend.build("shop", shop(RISE_2_FALL_3, a));
        check(before, 1);
        a.healthy(false);
        check(before, 2);
        assertThat(inRotation(before, a)).as("two failures of three").isTrue();

        Backend after = Backend.build("shop", shop(RISE_2_FALL_3, a)
                .withTimeouts(Duration.ofSeconds(1), Duration.ofSeconds(5), Duration.ofSeconds(5)), before);
        assertThat(after).isNotSameAs(before);

        check(after, 1);
        assertThat(inRotation(after, a)).as("the third failure in a row, the first after the reload").isFalse();
    }

    /** As Envoy, whose health checker is rebuilt with a changed cluster and counts from zero. */
    @Test
    void aReloadThatChangesTheThresholdsStartsTheCountAgain() throws Exception {
        HealthCheckConfig rise3 = new HealthCheckConfig("/health", Duration.ofHours(1), Duration.ofSeconds(2), 3, 3);
        Backend before = Backend.build("shop", shop(rise3, a));
        a.healthy(false);
        check(before, 1);
        a.healthy(true);
        check(before, 2);

        Backend after = Backend.build("shop", shop(rise3.withThresholds(2, 3), a), before);

        check(after, 1);
        assertThat(inRotation(after, a)).as("one pass counted against the new healthyThreshold, 2").isFalse();
        check(after, 1);
        assertThat(inRotation(after, a)).isTrue();
    }

    @Test
    void anEndpointOutByTheOldPathIsBackAtTheFirstPassOfANewPathButNotBeforeIt() throws Exception {
        Backend before = Backend.build("shop", shop(RISE_2_FALL_3, a));
        a.healthy(false); // /health fails; every other path answers 200
        check(before, 1);
        assertThat(inRotation(before, a)).isFalse();

        Backend after = Backend.build("shop", shop(RISE_2_FALL_3.withPath("/ready"), a), before);
        assertThat(inRotation(after, a)).as("out until the new path has answered").isFalse();

        check(after, 1);
        assertThat(inRotation(after, a)).as("one pass of /ready, not healthyThreshold (2)").isTrue();
        assertThat(a.healthChecksAnswered(false)).as("/health asked only before the reload").isEqualTo(1);
        assertThat(healthEvents()).containsExactly(
                "event=backend_health backend=shop endpoint=127.0.0.1:" + a.port()
                        + " healthy=false checks=1 cause=\"health check answered 503\"",
                "event=backend_health backend=shop endpoint=127.0.0.1:" + a.port() + " healthy=true checks=1");
    }

    @Test
    void anEndpointInRotationLeavesAtTheFirstFailureOfANewPathThenThresholdsApply() throws Exception {
        Backend before = Backend.build("shop", shop(RISE_2_FALL_3.withPath("/ready"), a));
        a.healthy(false); // only /health fails
        check(before, 2);
        assertThat(inRotation(before, a)).isTrue();

        Backend after = Backend.build("shop", shop(RISE_2_FALL_3, a), before);
        assertThat(inRotation(after, a)).as("in until the new path has answered").isTrue();

        check(after, 1);
        assertThat(inRotation(after, a)).as("one failure of /health, not unhealthyThreshold (3)").isFalse();
        a.healthy(true);
        check(after, 1);
        assertThat(inRotation(after, a)).as("decided: back only after healthyThreshold (2) passes").isFalse();
        check(after, 1);
        assertThat(inRotation(after, a)).isTrue();
    }

    @Test
    void anEndpointOutUnderTheOldServerNameIsBackAtTheFirstPassUnderANewOne(@TempDir Path dir) throws Exception {
        // One server with two virtual hosts; the check asks the one serverName names, in SNI and Host.
        TestPki pki = TestPki.create(dir);
        TestPki.Issued certificate = pki.backendServer("shop", c -> c.addSanDnsName("shop.internal")
                .addSanDnsName("shop-v2.internal"));
        try (TestBackend shop = TestBackend.start(TestBackend.tlsContext(certificate, null))) {
            BackendTlsConfig tls = BackendTlsConfig.trusting(pki.caPem()).withServerName("shop.internal");
            Backend before = Backend.build("shop", BackendConfig.of(List.of(URI.create(shop.url())), tls)
                    .withHealthCheck(RISE_2_FALL_3));
            shop.healthy(false); // shop.internal fails its check
            check(before, 1);
            assertThat(inRotation(before, shop)).isFalse();
            assertThat(shop.lastHealthCheckHost()).isEqualTo("shop.internal:" + shop.port());

            // Only the serverName changes: the same path, another virtual host, which passes.
            Backend after = Backend.build("shop", BackendConfig.of(List.of(URI.create(shop.url())),
                    tls.withServerName("shop-v2.internal")).withHealthCheck(RISE_2_FALL_3), before);
            assertThat(inRotation(after, shop)).as("out until the new name has answered").isFalse();
            shop.healthy(true);

            check(after, 1);
            assertThat(shop.lastHealthCheckHost()).isEqualTo("shop-v2.internal:" + shop.port());
            assertThat(inRotation(after, shop)).as("one pass for shop-v2.internal, not healthyThreshold (2)")
                    .isTrue();
        }
    }

    @Test
    void aBackendWithoutAHealthCheckKeepsNoVerdict() throws Exception {
        Backend before = Backend.build("shop", shop(RISE_2_FALL_3, a));
        a.healthy(false);
        check(before, 1);

        Backend after = Backend.build("shop", shop(null, a), before);

        assertThat(inRotation(after, a)).as("only passive health now").isTrue();
    }
}
