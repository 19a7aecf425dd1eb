package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.BodyPatternCheck;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bodies far larger than the heap stream through, to a plain and to a TLS backend. This test JVM (client, proxy and backend together) runs with
 * -Xmx256m (see the pom), so any buffering of a whole 1 GiB body fails with OutOfMemoryError. Runs, by its tag, in the
 * surefire execution {@code streaming}, with sampled leak detection.
 */
@Tag("streaming")
class LargeBodyStreamingTest {

    /** 1 GiB; overridable only to profile the streaming path quickly. */
    static final long ONE_GIB = Long.getLong("mtlsproxy.streaming.bytes", 1L << 30);
    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static TestBackend plainBackend;
    static TestBackend tlsBackend;
    static RunningProxy plain;
    static RunningProxy tls;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        plainBackend = TestBackend.start();
        tlsBackend = TestBackend.start(TestBackend.tlsContext(pki.backendServer("backend", b -> b
                .addSanIpAddress("127.0.0.1")), null));
        plain = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", plainBackend.url())
                .route("all", "/", "shop", "orders")
                .start();
        tls = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(List.of(URI.create(tlsBackend.url())),
                        BackendTlsConfig.trusting(pki.caPem())))
                .route("all", "/", "shop", "orders")
                .start();
    }

    @AfterAll
    static void stop() {
        plain.close();
        tls.close();
        plainBackend.close();
        tlsBackend.close();
    }

    private static RunningProxy proxy(String backend) {
        return backend.equals("tls") ? tls : plain;
    }

    private static TestBackend backend(String backend) {
        return backend.equals("tls") ? tlsBackend : plainBackend;
    }

    @ParameterizedTest(name = "{0} backend")
    @ValueSource(strings = {"plain", "tls"})
    @Timeout(180)
    void aOneGibUploadStreamsToTheBackend(String kind) throws Exception {
        assertThat(Runtime.getRuntime().maxMemory()).as("heap must be small for this test to mean anything")
                .isLessThan(300L << 20);
        try (MtlsClient client = MtlsClient.connect(proxy(kind).address(), pki.root(), pki.client(ORDERS))) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + ONE_GIB + "\r\n\r\n");
            copy(new TestBackend.PatternStream(ONE_GIB), client.output());
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend(kind).nextRequest(10, TimeUnit.SECONDS).bodyBytes()).isEqualTo(ONE_GIB);
    }

    @ParameterizedTest(name = "{0} backend")
    @ValueSource(strings = {"plain", "tls"})
    @Timeout(180)
    void aOneGibDownloadStreamsToTheClientIntact(String kind) throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy(kind).address(), pki.root(), pki.client(ORDERS))) {
            client.send("GET /download?bytes=" + ONE_GIB + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            BodyPatternCheck check = new BodyPatternCheck(TestBackend.PatternStream.PATTERN);
            assertThat(client.readResponseDiscardingBody(check)).isEqualTo(ONE_GIB);
            assertThat(check.firstMismatch()).as("first corrupted byte").isEqualTo(-1);
        }
        backend(kind).nextRequest(10, TimeUnit.SECONDS);
    }

    private static void copy(InputStream in, OutputStream out) throws Exception {
        byte[] buffer = new byte[64 * 1024];
        int n;
        while ((n = in.read(buffer)) > 0) {
            out.write(buffer, 0, n);
        }
        out.flush();
    }
}
