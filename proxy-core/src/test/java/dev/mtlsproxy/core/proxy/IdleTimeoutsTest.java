package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Idle timeouts: the listener's closes a client connection with no traffic either way, the backend's closes a pooled
 * connection nobody uses. Traffic that keeps moving, however slowly, is never idle; a client that stops reading a
 * response is.
 */
class IdleTimeoutsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final long IDLE_MILLIS = 500;
    /** Timers never fire early; a scheduled check may run this much before the clock the test reads says so. */
    static final long CLOCK_SLACK_MILLIS = 50;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(ForwardingHandler.class);

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> {
        Duration idle = Duration.ofMillis(IDLE_MILLIS);
        return RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .idleTimeout(idle)
                .backend("app", new BackendConfig(URI.create(backend.url()), Duration.ofSeconds(2),
                        Duration.ofSeconds(20), 8, idle))
                .route("app", "/", "app", "orders");
    });

    @BeforeEach
    void noConnectionLeftFromAnotherTest() {
        await().atMost(Duration.ofSeconds(5)).until(() -> fixture.backend().openConnections() == 0);
        fixture.proxy().accessLog().clear();
    }

    @Test
    void aClientConnectionWithNoTrafficIsClosedOnceTheIdleTimeoutPasses() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hello").status()).isEqualTo(200);
            long answered = System.nanoTime();
            assertThat(client.closedWithin(5_000)).as("closed by the proxy").isTrue();
            assertThat(millisSince(answered)).isBetween(IDLE_MILLIS - CLOCK_SLACK_MILLIS, 3_000L);
        }
    }

    @Test
    void aConnectionThatKeepsMakingRequestsStaysOpen() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // Four idle timeouts in all, never more than half of one without a request.
            for (int i = 0; i < 8; i++) {
                assertThat(client.get("/hello").status()).isEqualTo(200);
                Thread.sleep(IDLE_MILLIS / 2);
            }
            assertThat(client.get("/hello").status()).isEqualTo(200);
        }
    }

    @Test
    void aRequestBodyThatKeepsTricklingInIsNotIdle() throws Exception {
        int pieces = 8;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + pieces + "\r\n\r\n");
            OutputStream out = client.output();
            for (int i = 0; i < pieces; i++) {
                Thread.sleep(IDLE_MILLIS / 2);
                out.write('x');
                out.flush();
            }
            MtlsClient.Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("x".repeat(pieces));
        }
    }

    @Test
    void aClientThatStopsSendingItsBodyGets408AndTheBackendIsNotBlamed() throws Exception {
        double backendTimeouts = fixture.proxy().count("mtls.proxy.backend.requests", "backend", "app", "result",
                "timeout");
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nxx");
            // The backend answers once the body is complete; its other six bytes never come.
            assertThat(client.readResponse().status()).isEqualTo(408);
        }
        AccessLogEntry entry = fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS);
        assertThat(entry).isNotNull();
        assertThat(entry.status()).isEqualTo(408);
        assertThat(fixture.proxy().count("mtls.proxy.backend.requests", "backend", "app", "result", "timeout"))
                .as("the client stalled, not the backend: MtlsProxyBackendErrors must not see it")
                .isEqualTo(backendTimeouts);
        await().atMost(Duration.ofSeconds(5)).until(() -> fixture.backend().openConnections() == 0);
    }

    @Test
    void aBackendThatTakesLongerThanTheIdleTimeoutToAnswerGets504() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            long sent = System.nanoTime();
            // The backend's response timeout is 20 s; the client connection's idleness ends the wait first.
            assertThat(client.get("/hang").status()).isEqualTo(504);
            assertThat(millisSince(sent)).isBetween(IDLE_MILLIS - CLOCK_SLACK_MILLIS, 5_000L);
        }
        assertThat(log.await("backend=app", "status=504"))
                .contains("cause=\"response timeout: client connection idle\"");
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aClientThatStopsReadingALongResponseIsClosedOnceTheIdleTimeoutPasses() throws Exception {
        long total = 1L << 30;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("GET /download?bytes=" + total + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            InputStream in = client.input();
            byte[] some = new byte[16 * 1024];
            assertThat(in.read(some)).isPositive();
            // Reads nothing more: the proxy fills the socket buffers, stops reading the backend, and then has
            // nothing left to do on this connection.
            AccessLogEntry entry = fixture.proxy().accessLog().poll(10, TimeUnit.SECONDS);
            assertThat(entry).as("the exchange ended without the client").isNotNull();
            assertThat(entry.path()).isEqualTo("/download");
            assertThat(entry.bytesOut()).isLessThan(total);
            await().atMost(Duration.ofSeconds(5)).until(() -> fixture.backend().openConnections() == 0);
            assertThat(fixture.backend().downloadBytesProduced()).isLessThan(total);
        }
    }

    @Test
    void anUnusedPooledBackendConnectionIsClosedOnceTheBackendIdleTimeoutPasses() throws Exception {
        long answered;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hello").status()).isEqualTo(200);
            answered = System.nanoTime();
            assertThat(fixture.backend().openConnections()).as("pooled for reuse").isEqualTo(1);
        }
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10))
                .until(() -> fixture.backend().openConnections() == 0);
        assertThat(millisSince(answered)).isGreaterThanOrEqualTo(IDLE_MILLIS - CLOCK_SLACK_MILLIS);
    }

    private static long millisSince(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - nanos);
    }
}
