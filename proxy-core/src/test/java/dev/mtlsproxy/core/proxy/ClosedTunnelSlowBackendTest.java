package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A WebSocket tunnel whose client sends its last bytes all at once and ends, while its backend takes them slowly but
 * steadily: longer in all than the listener's idle timeout. The backend's connection stays until it has taken every
 * one of them (the idle timeout bounds the time between two writes, as nginx's proxy_send_timeout, not the whole),
 * and nothing is logged or counted as cut.
 *
 * <p>See {@link SlowReadingBackend} for how a backend on loopback makes bytes wait in the proxy. Linux only (epoll).
 */
class ClosedTunnelSlowBackendTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(1);
    /**
     * The backend takes this much every READ_EVERY: 64 KiB a second, two of the kernel's steps in an idle timeout,
     * and half of what waits in the proxy when the tunnel ends.
     */
    static final int READ_BYTES = 1024;
    static final Duration READ_EVERY = Duration.ofMillis(16);
    /** Some three times what the proxy's kernel holds for the backend. */
    static final int SENT = 192 * 1024;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(TunnelBackendDrain.class);

    @TempDir
    static Path dir;
    static TestPki pki;
    static SlowReadingBackend backend;
    static RunningProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = new SlowReadingBackend(1400, READ_BYTES, READ_EVERY, SENT);
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("slow", "http://127.0.0.1:" + backend.address().getPort())
                .route("ws", "/ws", "slow", "orders")
                .idleTimeout(IDLE_TIMEOUT)
                .start();
    }

    @AfterAll
    static void stop() {
        if (proxy != null) {
            proxy.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    @Test
    void aBackendStillTakingTheLastBytesOfAClosedTunnelGetsThemAll() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            byte[] bytes = SlowReadingBackend.expectedBytes(SENT);
            // Sent with the upgrade request, before its answer, and ended as soon as the switch is answered: the
            // tunnel ends with most of it waiting for the backend. Not ended before the 101: a client that ends its
            // side before it has an answer has abandoned the request, and the proxy may drop it, as nginx does.
            client.send(ProtocolSwitchTest.UPGRADE);
            client.output().write(bytes);
            client.output().flush();
            assertThat(client.readResponse().status()).isEqualTo(101);
            client.endOutput();
            assertThat(client.closedWithin(10_000)).as("the tunnel ended").isTrue();
        }

        long taking = (long) SENT * READ_EVERY.toMillis() / READ_BYTES;
        assertThat(Duration.ofMillis(taking)).as("the backend takes longer than one idle timeout").isGreaterThan(
                IDLE_TIMEOUT.multipliedBy(3));
        SlowReadingBackend.Received received = backend.closed.poll(taking * 3, TimeUnit.MILLISECONDS);
        assertThat(received).as("the backend's connection closed").isNotNull();
        assertThat(received.firstMismatch()).as("the first byte not as sent").isEqualTo(-1);
        assertThat(received.bytes()).as("bytes the backend got before the proxy closed its connection; logged: %s",
                log.lines()).isEqualTo(SENT);
        assertThat(log.lines()).noneMatch(line -> line.contains("event=tunnel_backend_cut"));
        assertThat(proxy.count("mtls.proxy.backend.tunnel.cuts", "backend", "slow")).isZero();
    }
}
