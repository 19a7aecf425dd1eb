package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bodies far larger than the heap stream through. This test JVM (client, proxy and backend together) runs with
 * -Xmx256m (see the pom), so any buffering of a whole 1 GiB body fails with OutOfMemoryError.
 */
class LargeBodyStreamingTest {

    /** 1 GiB; overridable only to profile the streaming path quickly. */
    static final long ONE_GIB = Long.getLong("mtlsproxy.streaming.bytes", 1L << 30);
    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static TestBackend backend;
    static RunningProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = TestBackend.start();
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", backend.url())
                .route("all", "/", "shop", "orders")
                .start();
    }

    @AfterAll
    static void stop() {
        proxy.close();
        backend.close();
    }

    @Test
    @Timeout(180)
    void aOneGibUploadStreamsToTheBackend() throws Exception {
        assertThat(Runtime.getRuntime().maxMemory()).as("heap must be small for this test to mean anything")
                .isLessThan(300L << 20);
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + ONE_GIB + "\r\n\r\n");
            copy(new TestBackend.PatternStream(ONE_GIB), client.output());
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend.nextRequest(10, TimeUnit.SECONDS).bodyBytes()).isEqualTo(ONE_GIB);
    }

    @Test
    @Timeout(180)
    void aOneGibDownloadStreamsToTheClientIntact() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            client.send("GET /download?bytes=" + ONE_GIB + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            PatternCheck check = new PatternCheck();
            assertThat(client.readResponseDiscardingBody(check)).isEqualTo(ONE_GIB);
            assertThat(check.mismatchAt).as("first corrupted byte").isEqualTo(-1);
        }
        backend.nextRequest(10, TimeUnit.SECONDS);
    }

    private static void copy(InputStream in, OutputStream out) throws Exception {
        byte[] buffer = new byte[64 * 1024];
        int n;
        while ((n = in.read(buffer)) > 0) {
            out.write(buffer, 0, n);
        }
        out.flush();
    }

    /** Checks the backend's pattern (byte i is (byte) i) as it streams past, without keeping it. */
    static final class PatternCheck extends OutputStream {
        long position;
        long mismatchAt = -1;

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            for (int i = 0; i < len; i++) {
                if (mismatchAt < 0 && b[off + i] != (byte) (position + i)) {
                    mismatchAt = position + i;
                }
            }
            position += len;
        }
    }
}
