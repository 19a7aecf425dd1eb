package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.core.backend.Endpoint;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Backends with several endpoints, on loopback: round robin, failover when an endpoint is down, passive and active
 * health, and the one rule for retries: only a request of which nothing was sent is tried elsewhere.
 */
class BackendFailoverTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    Path dir;
    TestPki pki;
    TestBackend a;
    TestBackend b;
    String down;
    RunningProxy proxy;
    @RegisterExtension
    final LogCapture log = LogCapture.of(ForwardingHandler.class);
    @RegisterExtension
    final LogCapture healthLog = LogCapture.of(Endpoint.class);

    @BeforeEach
    void start() throws Exception {
        pki = TestPki.create(dir);
        a = TestBackend.start();
        b = TestBackend.start();
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            down = "http://127.0.0.1:" + s.getLocalPort();
        }
    }

    @AfterEach
    void stop() {
        if (proxy != null) {
            proxy.close();
        }
        a.close();
        b.close();
    }

    private void proxyTo(BackendConfig backend) throws Exception {
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", backend)
                .route("all", "/", "shop", "orders")
                .start();
    }

    private static BackendConfig endpoints(String... urls) {
        return BackendConfig.of(Arrays.stream(urls).map(URI::create).toList(), null);
    }

    private double connectErrors() {
        return proxy.metrics().find("mtls.proxy.backend.connect.errors").tag("backend", "shop").counters().stream()
                .mapToDouble(c -> c.count()).sum();
    }

    private MtlsClient client() throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }

    private double healthyEndpoints() {
        return proxy.metrics().get("mtls.proxy.backend.healthy.endpoints").tag("backend", "shop").gauge().value();
    }

    @Test
    void requestsAreSpreadRoundRobin() throws Exception {
        proxyTo(endpoints(a.url(), b.url()));
        try (MtlsClient client = client()) {
            for (int i = 0; i < 6; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(200);
            }
        }
        assertThat(a.pendingRequests()).isEqualTo(3);
        assertThat(b.pendingRequests()).isEqualTo(3);
    }

    @Test
    void anEndpointThatIsDownIsSkippedAfterOneFailedConnectionAndTheRequestIsRetried() throws Exception {
        proxyTo(endpoints(down, b.url()));
        try (MtlsClient client = client()) {
            for (int i = 0; i < 10; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(200);
            }
        }
        assertThat(b.pendingRequests()).isEqualTo(10);
        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "shop", "reason", "refused"))
                .as("in cool-down, the endpoint is not tried again").isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isEqualTo(1);
        assertThat(healthyEndpoints()).isEqualTo(1);
        assertThat(log.await("event=backend_retry")).isEqualTo("event=backend_retry backend=shop endpoint="
                + down.substring(7) + " cause=\"connection refused\" next=" + b.url().substring(7));
    }

    @Test
    void aRequestBodyIsKeptUntilAnEndpointAcceptsTheConnection() throws Exception {
        proxyTo(endpoints(down, b.url()));
        byte[] body = new byte[1 << 20];
        try (MtlsClient client = client()) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + body.length + "\r\n\r\n");
            client.output().write(body);
            client.output().flush();
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(b.nextRequest(5, TimeUnit.SECONDS).bodyBytes()).isEqualTo(body.length);
    }

    @Test
    void aRequestAlreadySentIsNeverRetriedElsewhere() throws Exception {
        proxyTo(endpoints(a.url(), b.url()));
        try (MtlsClient client = client()) {
            client.send("POST /close HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
            assertThat(client.readResponse().status()).isEqualTo(502);
        }
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).bodyBytes()).isEqualTo(5);
        assertThat(b.nextRequest(300, TimeUnit.MILLISECONDS)).as("the other endpoint never sees it").isNull();
        assertThat(log.await("backend=shop", "status=502")).contains("cause=\"backend closed the connection\"");
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isZero();
        assertThat(healthyEndpoints()).as("it connected fine: no cool-down").isEqualTo(2);
    }

    @Test
    void aGetOnAPooledConnectionTheBackendClosedIsSentOnceMoreOnANewConnection() throws Exception {
        // The keep-alive race: the backend closes its idle connection just as the proxy reuses it.
        proxyTo(endpoints(a.url()));
        a.closeReusedConnections(true);
        try (MtlsClient client = client()) {
            assertThat(client.get("/first").status()).isEqualTo(200);
            assertThat(client.get("/second").status()).as("sent again on a new connection").isEqualTo(200);
        }
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/first");
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/second");
        assertThat(a.nextRequest(300, TimeUnit.MILLISECONDS)).isNull();
        assertThat(a.connectionsAccepted()).isEqualTo(2);
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isEqualTo(1);
        assertThat(log.await("event=backend_retry")).isEqualTo("event=backend_retry backend=shop endpoint="
                + a.url().substring(7) + " cause=\"reused connection: backend closed the connection\" next="
                + a.url().substring(7));
        assertThat(healthyEndpoints()).as("not a connect failure: no cool-down").isEqualTo(1);
    }

    @Test
    void aPostOnAPooledConnectionTheBackendClosedIsNotSentAgain() throws Exception {
        proxyTo(endpoints(a.url()));
        a.closeReusedConnections(true);
        try (MtlsClient client = client()) {
            assertThat(client.get("/first").status()).isEqualTo(200);
            client.send("POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
            assertThat(client.readResponse().status()).isEqualTo(502);
        }
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/first");
        assertThat(a.nextRequest(300, TimeUnit.MILLISECONDS)).as("never sent on a new connection").isNull();
        assertThat(a.connectionsAccepted()).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isZero();
    }

    @Test
    void aRequestIsSentOnceMoreAtMostThenTheFailureIsAnswered() throws Exception {
        proxyTo(endpoints(a.url()));
        try (MtlsClient client = client()) {
            assertThat(client.get("/first").status()).isEqualTo(200);
            // /close: the backend reads the request and closes without an answer, on the new connection too.
            assertThat(client.get("/close").status()).isEqualTo(502);
        }
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/first");
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/close");
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).as("once more, on a new connection").isEqualTo("/close");
        assertThat(a.nextRequest(300, TimeUnit.MILLISECONDS)).isNull();
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isEqualTo(1);
    }

    @Test
    void aGetOnANewConnectionTheBackendClosedAtOnceIsSentOnceMoreOnAnother() throws Exception {
        // A backend at its connection limit, or shutting down, accepts a connection and closes it unread.
        proxyTo(endpoints(a.url()));
        a.closeNewConnections(1);
        try (MtlsClient client = client()) {
            MtlsClient.Response response = client.get("/orders/1");
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("hello from backend\n");
        }
        assertThat(a.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/orders/1");
        assertThat(a.connectionsAccepted()).isEqualTo(2);
        assertThat(log.await("event=backend_retry")).isEqualTo("event=backend_retry backend=shop endpoint="
                + a.url().substring(7) + " cause=\"new connection: backend closed the connection\" next="
                + a.url().substring(7));
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "ok")).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "failed")).isZero();
        assertThat(connectErrors()).as("it connected: the backend closed what it had accepted").isZero();
        assertThat(healthyEndpoints()).as("no cool-down").isEqualTo(1);
    }

    @Test
    void aBackendThatClosesEveryNewConnectionCostsOneMoreConnectionThenA502() throws Exception {
        proxyTo(endpoints(a.url()));
        a.closeNewConnections(Integer.MAX_VALUE);
        try (MtlsClient client = client()) {
            assertThat(client.get("/orders/1").status()).isEqualTo(502);
        }
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(2))
                .until(() -> a.connectionsAccepted() == 2);
        assertThat(a.nextRequest(100, TimeUnit.MILLISECONDS)).as("none was read").isNull();
        assertThat(log.await("status=502")).isEqualTo("event=backend_failed backend=shop endpoint="
                + a.url().substring(7) + " cause=\"backend closed the connection\" status=502");
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "failed"))
                .isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "ok")).isZero();
    }

    @Test
    void aPostOnANewConnectionTheBackendClosedAtOnceIsNotSentAgain() throws Exception {
        // The close reaches the proxy after the request went out: the proxy cannot know the backend never read it.
        proxyTo(endpoints(a.url()));
        a.closeNewConnections(1);
        try (MtlsClient client = client()) {
            client.send("POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
            assertThat(client.readResponse().status()).isEqualTo(502);
        }
        assertThat(a.connectionsAccepted()).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "shop")).isZero();
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "failed"))
                .isEqualTo(1);
    }

    @Test
    void aLoneEndpointThatFailedIsTriedAgainAtOnceAndServesWhenItIsBack() throws Exception {
        // A cool-down of 10 s (the default) must not turn one failed connect into 10 s of refusals.
        proxyTo(endpoints(down));
        try (MtlsClient client = client()) {
            assertThat(client.get("/a").status()).isEqualTo(502);
            assertThat(client.get("/b").status()).as("still down: tried again, not refused").isEqualTo(502);
            TestBackend restarted = TestBackend.startOn(URI.create(down).getPort());
            try {
                assertThat(client.get("/c").status()).as("back up, within the cool-down").isEqualTo(200);
                assertThat(restarted.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/c");
            } finally {
                restarted.close();
            }
        }
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "connect_error"))
                .isEqualTo(2);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "unavailable"))
                .isZero();
    }

    @Test
    void whenEveryEndpointIsCoolingDownTheRequestStillGoesToOne() throws Exception {
        proxyTo(endpoints(down, b.url()));
        try (MtlsClient client = client()) {
            assertThat(client.get("/warm").status()).isEqualTo(200);
            b.close();
            // Both endpoints now refuse; each failure starts a cool-down, none turns into a 503.
            for (int i = 0; i < 3; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(502);
            }
        }
        assertThat(healthyEndpoints()).as("passive health still reports them down").isZero();
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "unavailable"))
                .isZero();
    }

    @Test
    void noEndpointPassingTheActiveHealthCheckIs503() throws Exception {
        proxyTo(endpoints(a.url())
                .withHealthCheck(new HealthCheckConfig("/health", Duration.ofMillis(100), Duration.ofSeconds(1))));
        a.healthy(false);
        await().atMost(Duration.ofSeconds(5)).until(() -> healthyEndpoints() == 0);
        drain(a);
        try (MtlsClient client = client()) {
            assertThat(client.get("/orders/1").status()).isEqualTo(503);
        }
        assertThat(log.await("status=503")).isEqualTo(
                "event=backend_failed backend=shop endpoint=- cause=\"no healthy endpoint\" status=503");
        assertThat(drain(a)).as("the failing endpoint gets no request").isZero();
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "shop", "result", "unavailable"))
                .isEqualTo(1);
    }

    @Test
    void anActiveHealthCheckTakesAnEndpointOutAfterUnhealthyThresholdFailuresAndBackAfterHealthyThresholdPasses()
            throws Exception {
        proxyTo(endpoints(a.url(), b.url()).withHealthCheck(
                new HealthCheckConfig("/health", Duration.ofMillis(50), Duration.ofSeconds(1), 3, 4)));
        await().atMost(Duration.ofSeconds(5)).until(() -> a.pendingRequests() > 0 && b.pendingRequests() > 0);

        // Nothing fails between the count and the switch: every failure counted after it is one the proxy may see.
        int failedBefore = a.healthChecksAnswered(false);
        a.healthy(false);
        // Polled far more often than checks run: an endpoint that left after 1 failure would be seen at 1.
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(5)).until(() -> healthyEndpoints() == 1);
        assertThat(a.healthChecksAnswered(false) - failedBefore).as("failed checks when it left")
                .isGreaterThanOrEqualTo(4);
        assertThat(healthLog.await("healthy=false")).isEqualTo("event=backend_health backend=shop endpoint="
                + a.url().substring(7) + " healthy=false checks=4 cause=\"health check answered 503\"");
        drain(a);
        drain(b);
        try (MtlsClient client = client()) {
            for (int i = 0; i < 4; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(200);
            }
        }
        assertThat(drain(a)).as("no traffic to the unhealthy endpoint").isZero();
        assertThat(drain(b)).isEqualTo(4);

        int passedBefore = a.healthChecksAnswered(true);
        a.healthy(true);
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(5)).until(() -> healthyEndpoints() == 2);
        assertThat(a.healthChecksAnswered(true) - passedBefore).as("passed checks when it came back")
                .isGreaterThanOrEqualTo(3);
        assertThat(healthLog.await("healthy=true")).isEqualTo("event=backend_health backend=shop endpoint="
                + a.url().substring(7) + " healthy=true checks=3");
    }

    /** Takes every recorded request; returns how many were not health checks. */
    private static int drain(TestBackend backend) throws InterruptedException {
        int requests = 0;
        TestBackend.Recorded r;
        while ((r = backend.nextRequest(50, TimeUnit.MILLISECONDS)) != null) {
            requests += r.uri().equals("/health") ? 0 : 1;
        }
        return requests;
    }
}
