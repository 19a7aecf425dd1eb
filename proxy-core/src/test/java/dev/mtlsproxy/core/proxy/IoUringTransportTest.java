package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.config.IoTransport;
import dev.mtlsproxy.config.WorkersConfig;
import dev.mtlsproxy.core.testing.BodyPatternCheck;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The proxy on {@code workers.transport: io_uring}, end to end: the same policy, refusals and streaming as on
 * epoll. Skipped where the kernel or a seccomp profile does not allow io_uring (the proxy would refuse to start).
 */
@EnabledOnOs(OS.LINUX)
class IoUringTransportTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING = "spiffe://prod.test/ns/billing/sa/api";
    /** Larger than this test JVM's whole heap (-Xmx256m), so it can only pass streamed. */
    static final long BODY_BYTES = 320L << 20;

    /** Attached when the class is initialised, before the fixture starts the proxy: its start-up lines are wanted. */
    @RegisterExtension
    static final LogCapture log = LogCapture.of(ProxyServer.class);

    /** On a machine without io_uring, RunningProxy's start skips the class, saying why. */
    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .backend("shop", backend.url())
            .route("orders", "/orders", "shop", "orders")
            .route("files", "/", "shop", "orders")
            .workers(new WorkersConfig(2, null, null, IoTransport.IO_URING)));

    @Test
    void theListenerSaysWhichTransportItRunsOn() {
        assertThat(log.await("event=listening")).contains("transport=io_uring");
    }

    @Test
    void anAllowedClientIsServedOnOneConnectionAndAnotherIdentityIsDenied() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            for (int i = 0; i < 20; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(200);
            }
        }
        try (MtlsClient client = fixture.connect(BILLING)) {
            assertThat(client.get("/orders").status()).isEqualTo(403);
        }
    }

    @Test
    void aClientOfAnotherCaIsRefused() {
        Throwable refused = catchThrowable(() -> {
            try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(),
                    TestPki.clientOfAnotherRoot(ORDERS))) {
                client.get("/orders");
            }
        });
        assertThat(refused).isInstanceOf(IOException.class);
    }

    @Test
    @Timeout(120)
    void aBodyLargerThanTheHeapStreamsBothWaysIntact() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + BODY_BYTES + "\r\n\r\n");
            copy(new TestBackend.PatternStream(BODY_BYTES), client.output());
            assertThat(client.readResponse().status()).isEqualTo(200);
            assertThat(upload().bodyBytes()).isEqualTo(BODY_BYTES);

            client.send("GET /download?bytes=" + BODY_BYTES + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            BodyPatternCheck check = new BodyPatternCheck(TestBackend.PatternStream.PATTERN);
            assertThat(client.readResponseDiscardingBody(check)).isEqualTo(BODY_BYTES);
            assertThat(check.firstMismatch()).as("first corrupted byte").isEqualTo(-1);
        }
    }

    /** The upload as the backend received it; the other tests' requests may be queued before it. */
    private static TestBackend.Recorded upload() throws InterruptedException {
        for (;;) {
            TestBackend.Recorded request = fixture.backend().nextRequest(10, TimeUnit.SECONDS);
            assertThat(request).as("the upload reached the backend").isNotNull();
            if (request.method().equals("POST")) {
                return request;
            }
        }
    }

    private static void copy(InputStream in, OutputStream out) throws IOException {
        byte[] buffer = new byte[64 * 1024];
        for (int n; (n = in.read(buffer)) > 0; ) {
            out.write(buffer, 0, n);
        }
        out.flush();
    }
}
