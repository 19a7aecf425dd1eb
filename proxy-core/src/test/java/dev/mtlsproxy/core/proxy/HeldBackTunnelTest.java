package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SlowLink;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * An open WebSocket tunnel where one side reads slowly but steadily, longer in all than the listener's idle timeout,
 * what the other sent at once. The proxy stops reading the sender meanwhile (back-pressure), so the sender's
 * connection has no traffic of its own for several timeouts: it is not idle for that, since the other direction
 * moves, and the tunnel stays open (nginx times each direction of an upgraded connection, and not the side it does
 * not read).
 *
 * <p>The slow side makes bytes wait in the proxy as {@link SlowReadingBackend} and {@link SlowLink} describe.
 * Linux only (epoll).
 */
class HeldBackTunnelTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(1);
    /**
     * The backend takes this much every READ_EVERY: 64 KiB a second, two of its kernel's steps (see
     * {@link SlowReadingBackend}) in an idle timeout.
     */
    static final int READ_BYTES = 1024;
    static final Duration READ_EVERY = Duration.ofMillis(16);
    /** Three timeouts of the backend's reading, small enough for the proxy to read it all right after the switch. */
    static final int SENT_UP = 192 * 1024;
    /**
     * The backend answers once it took nearly two idle timeouts' worth: more than the proxy's kernel holds for it is
     * still waiting then, so the answer does not depend on how fast the backend takes what only the kernel holds,
     * which the proxy cannot see (README, WebSocket).
     */
    static final int TAKEN_BEFORE_ANSWER = 112 * 1024;
    /** The client takes this much every READ_EVERY, at most. */
    static final int LINK_READ_BYTES = 2 * 1024;
    /** More than the client reads in the test. */
    static final int SENT_DOWN = 8 * 1024 * 1024;
    static final String STILL_THERE = "still there";

    @RegisterExtension
    static final LogCapture log = LogCapture.of(TunnelBackendDrain.class);

    @TempDir
    static Path dir;
    static TestPki pki;
    static SlowReadingBackend slowReader;
    static SocketBackend bulkSender;
    static RunningProxy proxy;
    static final BlockingQueue<String> heardByBulkSender = new LinkedBlockingQueue<>();

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        slowReader = new SlowReadingBackend(1400, READ_BYTES, READ_EVERY, TAKEN_BEFORE_ANSWER);
        bulkSender = SocketBackend.start("bulk-sending-backend", HeldBackTunnelTest::sendAtOnceWhileListening);
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("slow", "http://127.0.0.1:" + slowReader.address().getPort())
                .backend("bulk", bulkSender.url())
                .route("up", "/up", "slow", "orders")
                .route("down", "/down", "bulk", "orders")
                .idleTimeout(IDLE_TIMEOUT)
                .start();
    }

    @AfterAll
    static void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
        if (slowReader != null) {
            slowReader.close();
        }
        if (bulkSender != null) {
            bulkSender.close();
        }
    }

    @Test
    void aClientHeldBackWhileItsBackendSlowlyTakesWhatItSentKeepsItsTunnel() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            // Sent with the upgrade request: once the tunnel is open the proxy reads it, and then nothing more from
            // the client, who is sent nothing either, while the backend takes it.
            client.send(ProtocolSwitchTest.UPGRADE.replace("/ws", "/up"));
            client.output().write(SlowReadingBackend.expectedBytes(SENT_UP));
            client.output().flush();
            assertThat(client.readResponse().status()).isEqualTo(101);
            long switched = System.nanoTime();

            assertThat(MtlsClient.readLine(client.input()))
                    .as("the backend's answer once it took %s bytes, through a tunnel still open; logged: %s",
                            TAKEN_BEFORE_ANSWER, log.lines())
                    .isEqualTo(SlowReadingBackend.ACKNOWLEDGED.strip());
            assertThat(Duration.ofNanos(System.nanoTime() - switched)).as("the time the backend took")
                    .isGreaterThan(IDLE_TIMEOUT.multipliedBy(3).dividedBy(2));
            // The client ends the tunnel; the backend gets the rest as at any end of a tunnel.
            client.endOutput();
            assertThat(client.closedWithin(10_000)).as("the tunnel ended").isTrue();
        }

        SlowReadingBackend.Received received = slowReader.closed.poll(10, TimeUnit.SECONDS);
        assertThat(received).as("the backend's connection closed after the client's").isNotNull();
        assertThat(received.firstMismatch()).as("the first byte not as sent").isEqualTo(-1);
        assertThat(received.bytes()).isEqualTo(SENT_UP);
        assertThat(log.lines()).noneMatch(line -> line.contains("event=tunnel_backend_cut"));
    }

    @Test
    void aBackendHeldBackWhileItsClientSlowlyReadsWhatItSentKeepsItsTunnel() throws Exception {
        try (SlowLink link = SlowLink.to(proxy.address());
                MtlsClient client = MtlsClient.connect(link.open(),
                        MtlsClient.clientContext(pki.root(), pki.client(ORDERS)))) {
            link.pace(LINK_READ_BYTES, READ_EVERY);
            client.send(ProtocolSwitchTest.UPGRADE.replace("/ws", "/down"));
            assertThat(client.readResponse().status()).isEqualTo(101);
            long switched = System.nanoTime();

            // Read for some three timeouts, all the while with more waiting in the proxy: the proxy reads the backend
            // only as the client makes room.
            long read = 0;
            byte[] piece = new byte[4 * 1024];
            while (System.nanoTime() - switched < IDLE_TIMEOUT.multipliedBy(3).toNanos()) {
                int n = client.input().read(piece);
                assertThat(n).as("bytes read after %s of %s; the tunnel ended", read, SENT_DOWN).isPositive();
                for (int i = 0; i < n; i++, read++) {
                    if (piece[i] != SlowReadingBackend.expected(read)) {
                        assertThat(piece[i]).as("byte %s", read).isEqualTo(SlowReadingBackend.expected(read));
                    }
                }
            }
            assertThat(read).as("what the client took of what the backend sent at once").isLessThan(SENT_DOWN);
            client.send(STILL_THERE + "\n");
            assertThat(heardByBulkSender.poll(5, TimeUnit.SECONDS)).as("what the backend heard, through the tunnel")
                    .isEqualTo(STILL_THERE);
        }
    }

    /**
     * Answers the upgrade with 101, then sends {@link #SENT_DOWN} bytes at once (from another thread: the proxy takes
     * them as its client does) while it passes on the lines it hears, until the proxy closes the connection.
     */
    private static void sendAtOnceWhileListening(Socket tcp) throws IOException {
        InputStream in = tcp.getInputStream();
        OutputStream out = tcp.getOutputStream();
        if (SocketBackend.readHead(in) == null) {
            return;
        }
        out.write(ProtocolSwitchTest.SWITCHED.getBytes(ISO_8859_1));
        out.flush();
        Thread sender = new Thread(() -> {
            try {
                out.write(SlowReadingBackend.expectedBytes(SENT_DOWN));
                out.flush();
            } catch (IOException closed) {
                // the tunnel ended before all of it was taken
            }
        }, "bulk-sender-writes");
        sender.setDaemon(true);
        sender.start();
        String line;
        while ((line = MtlsClient.readLine(in)) != null) {
            heardByBulkSender.add(line);
        }
    }
}
