package dev.mtlsproxy.core.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.core.testing.TestBackend;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The verdict a reload hands to the next generation is the running checker's last word, including a change it saw
 * after the next generation was built. A reload builds the next generation (copying each verdict), then lets it take
 * the verdicts over and start; the running checker keeps probing in between, and these tests put a real change of
 * the backend's health into that window, in order: build, then the old checker sees the flip (waited for), then
 * the handover. That is the seam {@code ProxyServer.reload} calls, in the same order; the window inside a real reload
 * is too short to hit on purpose.
 */
class HealthHandoverTest {

    /** Checks every 20ms, so the running checker sees a flip at once; in or out at two results in a row. */
    static final HealthCheckConfig OFTEN =
            new HealthCheckConfig("/health", Duration.ofMillis(20), Duration.ofSeconds(2), 2, 2);

    EventLoopGroup group;
    TestBackend a;
    Backends before;
    Backends after;

    @BeforeEach
    void start() throws Exception {
        group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory()); // every checker on one loop
        a = TestBackend.start();
    }

    @AfterEach
    void stop() throws Exception {
        if (after != null) {
            after.close();
        }
        if (before != null) {
            before.close();
        }
        a.close();
        group.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
    }

    private Backends shop(HealthCheckConfig check, Backends previous) throws Exception {
        return Backends.build(Map.of("shop", BackendConfig.of(List.of(URI.create(a.url())), null)
                .withHealthCheck(check)), previous);
    }

    private static Endpoint endpoint(Backends generation) {
        return generation.get("shop").endpoints().get(0);
    }

    @Test
    void anEndpointTheRunningCheckTakesOutAfterTheNextGenerationWasBuiltIsOutInIt() throws Exception {
        before = shop(OFTEN, null);
        before.start(group, NioSocketChannel.class);

        // Another interval: a rebuilt backend, asking the same question, which copies the verdict: in.
        after = shop(new HealthCheckConfig("/health", Duration.ofHours(1), Duration.ofSeconds(2), 2, 2), before);
        assertThat(after.get("shop")).isNotSameAs(before.get("shop"));
        assertThat(endpoint(after).isActivelyHealthy()).as("copied when built").isTrue();

        a.healthy(false);
        await().atMost(Duration.ofSeconds(5)).until(() -> !endpoint(before).isActivelyHealthy());

        after.takeOverHealthFrom(before);
        assertThat(endpoint(after).isActivelyHealthy()).as("the running check's last word, before any of its own")
                .isFalse();
    }

    @Test
    void anEndpointTheRunningCheckBringsBackAfterTheNextGenerationWasBuiltIsInItUntilItsNewQuestionAnswers()
            throws Exception {
        a.healthy(false);
        before = shop(OFTEN, null);
        before.start(group, NioSocketChannel.class);
        await().atMost(Duration.ofSeconds(5)).until(() -> !endpoint(before).isActivelyHealthy());

        // Another path: the verdict holds until the new path's first answer; built now, it holds "out".
        after = shop(OFTEN.withPath("/ready"), before);
        assertThat(endpoint(after).isActivelyHealthy()).as("copied when built").isFalse();

        a.healthy(true);
        await().atMost(Duration.ofSeconds(5)).until(() -> endpoint(before).isActivelyHealthy());

        after.takeOverHealthFrom(before);
        assertThat(endpoint(after).isActivelyHealthy()).as("the running check's last word, before any of its own")
                .isTrue();
    }

    @Test
    void aReloadThatRemovesTheCheckPutsAnEndpointItHadTakenOutBackIntoRotation() throws Exception {
        a.healthy(false);
        before = shop(OFTEN, null);
        before.start(group, NioSocketChannel.class);
        await().atMost(Duration.ofSeconds(5)).until(() -> !endpoint(before).isActivelyHealthy());

        // No check, no verdict to keep: the README's choice, HAProxy's (a server without "check" is up) and Envoy's.
        after = shop(null, before);
        after.takeOverHealthFrom(before);
        after.start(group, NioSocketChannel.class);
        assertThat(endpoint(after).isHealthy()).isTrue();
        assertThat(after.get("shop").pick(List.of())).isSameAs(endpoint(after));
    }

    @Test
    void aResultTheRunningCheckIsCountingWhenItStopsIsCountedBeforeTheHandoverReadsTheVerdict() throws Exception {
        // Checked once at start, then not for an hour: the only results are that one (a pass) and the two below.
        HealthCheckConfig once = new HealthCheckConfig("/health", Duration.ofHours(1), Duration.ofSeconds(2), 2, 2);
        before = shop(once, null);
        before.start(group, NioSocketChannel.class);
        after = shop(once.withThresholds(3, 3), before);

        // The checker's loop, busy counting two failed checks of the old generation, which take the endpoint out.
        CountDownLatch counting = new CountDownLatch(1);
        EventLoop checkerLoop = group.next();
        checkerLoop.execute(() -> {
            try {
                counting.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            endpoint(before).checked(false, "health check answered 503");
            endpoint(before).checked(false, "health check answered 503");
        });
        CompletableFuture<Void> handover = CompletableFuture.runAsync(() -> after.takeOverHealthFrom(before));
        try {
            handover.get(200, TimeUnit.MILLISECONDS);
        } catch (TimeoutException expected) {
            // the handover waits for the loop, as it should; a handover that did not would be done by now
        }
        counting.countDown();
        handover.get(5, TimeUnit.SECONDS);

        await().atMost(Duration.ofSeconds(5)).until(() -> !endpoint(before).isActivelyHealthy());
        assertThat(endpoint(after).isActivelyHealthy()).as("the result counted as the old check stopped").isFalse();
    }

    @Test
    void aBackendCarriedOverAsItIsKeepsItsChecksRunning() throws Exception {
        before = shop(OFTEN, null);
        before.start(group, NioSocketChannel.class);
        after = shop(OFTEN, before);
        assertThat(after.get("shop")).isSameAs(before.get("shop"));

        after.takeOverHealthFrom(before);
        int answered = a.healthChecksAnswered(true);
        after.start(group, NioSocketChannel.class);

        await().atMost(Duration.ofSeconds(5)).until(() -> a.healthChecksAnswered(true) > answered);
        a.healthy(false);
        await().atMost(Duration.ofSeconds(5)).until(() -> !endpoint(after).isActivelyHealthy());
    }

    /**
     * A reload that fails hands every backend's checks back, even when one cannot be: here the loop of the first
     * backend's checker has shut down, so resuming it is rejected. The second backend's checks run again, and the
     * rejection is thrown once both were tried, for the reload to report with its own failure.
     */
    @Test
    void aBackendWhoseChecksCannotBeResumedDoesNotKeepTheOthersStopped() throws Exception {
        EventLoopGroup ending = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        try (TestBackend b = TestBackend.start()) {
            BackendConfig first = BackendConfig.of(List.of(URI.create(a.url())), null).withHealthCheck(OFTEN);
            BackendConfig second = BackendConfig.of(List.of(URI.create(b.url())), null).withHealthCheck(OFTEN);
            // first's checks on the loop that will end: started there, then carried over as it is
            Backends firstOnly = Backends.build(Map.of("first", first), null);
            firstOnly.start(ending, NioSocketChannel.class);
            Map<String, BackendConfig> both = new LinkedHashMap<>();
            both.put("first", first);
            both.put("second", second);
            before = Backends.build(both, firstOnly);
            assertThat(before.get("first")).isSameAs(firstOnly.get("first"));
            before.start(group, NioSocketChannel.class);
            Map<String, BackendConfig> rebuilt = new LinkedHashMap<>();
            both.forEach((name, c) -> rebuilt.put(name, c.withHealthCheck(OFTEN.withThresholds(3, 3))));
            after = Backends.build(rebuilt, before);
            after.takeOverHealthFrom(before);
            ending.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
            int answered = b.healthChecksAnswered(true);

            Throwable thrown = catchThrowable(() -> after.giveHealthBackTo(before));

            assertThat(thrown).as("thrown once every backend was tried").isInstanceOf(
                    RejectedExecutionException.class);
            await().atMost(Duration.ofSeconds(5)).until(() -> b.healthChecksAnswered(true) > answered);
        } finally {
            ending.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
        }
    }

    @Test
    void aCheckerResumedAfterAFailedReloadWaitsForItsCheckStillOutInsteadOfSendingASecond() throws Exception {
        // A backend that holds each check it accepts until the test answers it.
        try (ServerSocketChannel backend = ServerSocketChannel.open()) {
            backend.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).configureBlocking(false);
            URI url = URI.create("http://127.0.0.1:" + ((InetSocketAddress) backend.getLocalAddress()).getPort());
            HealthCheckConfig hourly = new HealthCheckConfig("/health", Duration.ofHours(1), Duration.ofMinutes(1),
                    1, 1);
            before = Backends.build(Map.of("shop", BackendConfig.of(List.of(url), null).withHealthCheck(hourly)),
                    null);
            before.start(group, NioSocketChannel.class);
            SocketChannel[] first = new SocketChannel[1];
            await().atMost(Duration.ofSeconds(5)).until(() -> (first[0] = backend.accept()) != null);

            // A reload stops the old checker with its first check out, then fails before the next generation serves.
            after = Backends.build(Map.of("shop", BackendConfig.of(List.of(url), null)
                    .withHealthCheck(hourly.withThresholds(2, 2))), before);
            after.takeOverHealthFrom(before);
            after.giveHealthBackTo(before);

            // Whatever the resumed checker would send at once has been sent once its loop ran what resume queued,
            // and the tasks those queued in turn (a schedule, a round, a connect).
            for (int i = 0; i < 5; i++) {
                group.next().submit(() -> { }).sync();
            }
            try (SocketChannel second = backend.accept()) {
                assertThat(second).as("a second check of the endpoint while the first is out").isNull();
            }

            try (SocketChannel check = first[0]) {
                check.write(ByteBuffer.wrap("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII)));
                await().atMost(Duration.ofSeconds(5)).until(() -> !endpoint(before).isActivelyHealthy());
            }
        }
    }
}
