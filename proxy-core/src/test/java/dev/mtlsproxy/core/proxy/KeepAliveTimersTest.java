package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import java.io.EOFException;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The response and body-idle timeouts on keep-alive connections. A connection keeps one scheduled check per kind and
 * moves it only when a deadline comes sooner (issue #8: scheduling and cancelling a task per request was a visible
 * cost), so these check the cases that design could get wrong: a check left from an earlier request must not fire
 * early for a later one, and a later request with a shorter timeout (another backend) must not wait for the earlier
 * request's longer one.
 */
class KeepAliveTimersTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final long IMPATIENT_MILLIS = 600;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(ForwardingHandler.class);

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> {
        Duration impatient = Duration.ofMillis(IMPATIENT_MILLIS);
        return RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("patient", BackendConfig.of(List.of(URI.create(backend.url())), null)
                        .withTimeouts(null, Duration.ofSeconds(20), Duration.ofSeconds(20)))
                .backend("impatient", BackendConfig.of(List.of(URI.create(backend.url())), null)
                        .withTimeouts(null, impatient, impatient))
                .route("orders", "/orders", "patient", "orders")
                .route("slow", "/slow", "impatient", "orders")
                .route("hang", "/hang", "impatient", "orders")
                .route("stall", "/stall", "impatient", "orders");
    });

    @Test
    void theResponseTimeoutOfARequestCountsFromThatRequestNotFromAnEarlierOne() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // Answered after half the timeout: the check scheduled for this request is still pending when the
            // next request starts waiting.
            assertThat(client.get("/slow?ms=" + IMPATIENT_MILLIS / 2).status()).isEqualTo(200);
            long start = System.nanoTime();
            assertThat(client.get("/hang").status()).isEqualTo(504);
            long waitedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            // Timers never fire early, so anything shorter is the earlier request's check acting on this one.
            assertThat(waitedMillis).isGreaterThanOrEqualTo(IMPATIENT_MILLIS - 20);
        }
        assertThat(log.await("backend=impatient", "status=504"))
                .contains("cause=\"response timeout: no response headers within 600ms\"");
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aShorterResponseTimeoutAfterALongerOneOnTheSameConnectionIsKept() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // Leaves a check pending 20 s out, for the patient backend.
            assertThat(client.get("/orders/1").status()).isEqualTo(200);
            long start = System.nanoTime();
            assertThat(client.get("/hang").status()).isEqualTo(504);
            long waitedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertThat(waitedMillis).isBetween(IMPATIENT_MILLIS - 20, 10_000L);
        }
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aShorterBodyIdleTimeoutAfterALongerOneOnTheSameConnectionIsKept() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // Leaves a body-idle check pending 20 s out.
            assertThat(client.get("/orders/2").status()).isEqualTo(200);
            long start = System.nanoTime();
            client.send("GET /stall?bytes=100 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Throwable failure = catchThrowable(client::readResponse);
            assertThat(failure).as("a truncated body, never a complete one").isInstanceOf(EOFException.class);
            long waitedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertThat(waitedMillis).isBetween(IMPATIENT_MILLIS - 20, 10_000L);
        }
        assertThat(log.await("backend=impatient", "after=response_started"))
                .contains("cause=\"response body idle for 600ms\"");
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
        fixture.backend().nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void manyQuickRequestsOnOneConnectionNeverTimeOut() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // Spread over more than one timeout period, so the pending checks fire and re-schedule in between.
            long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(IMPATIENT_MILLIS * 2);
            int sent = 0;
            while (System.nanoTime() < end || sent < 3) {
                assertThat(client.get("/slow?ms=50").status()).isEqualTo(200);
                sent++;
            }
            for (int i = 0; i < sent; i++) {
                fixture.backend().nextRequest(5, TimeUnit.SECONDS);
            }
        }
    }
}
