package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.log.AsyncJsonAccessLog;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A log destination that stops accepting writes (a full disk, a stalled pipe) must never stall requests: with the
 * access log's output stuck for good, a flood of requests is still answered, and the lost lines are counted.
 * If logging blocked an event loop, the requests below would hang and the test would time out.
 */
class AccessLogBackPressureTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final int REQUESTS = 500;

    @TempDir
    Path dir;

    @Test
    void aStuckAccessLogNeitherBlocksNorLosesRequests() throws Exception {
        CountDownLatch never = new CountDownLatch(1);
        OutputStream stuck = new OutputStream() {
            @Override
            public void write(int b) throws java.io.IOException {
                try {
                    never.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.InterruptedIOException();
                }
            }
        };
        TestPki pki = TestPki.create(dir);
        AsyncJsonAccessLog accessLog = new AsyncJsonAccessLog(stuck, 8);
        try (TestBackend backend = TestBackend.start();
                RunningProxy proxy = RunningProxy.builder(pki)
                        .identity("orders", ORDERS)
                        .backend("shop", backend.url())
                        .route("all", "/", "shop", "orders")
                        .accessLog(accessLog)
                        .start();
                MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            for (int i = 0; i < REQUESTS; i++) {
                assertThat(client.get("/orders/" + i).status()).isEqualTo(200);
            }
        } finally {
            never.countDown();
            accessLog.close();
        }
        assertThat(accessLog.dropped()).isGreaterThanOrEqualTo(REQUESTS - 8 - AsyncJsonAccessLog.BATCH);
    }
}
