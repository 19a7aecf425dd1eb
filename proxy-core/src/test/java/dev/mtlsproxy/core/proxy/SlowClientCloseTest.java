package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.BodyPatternCheck;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SlowLink;
import dev.mtlsproxy.core.testing.TestBackend;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A response after which the proxy closes the connection must reach a client on a slow path whole, however long the
 * client takes to read its end. On such a path what the kernel cannot take waits in the proxy; a close that gives it a
 * fixed time to leave (Netty's TLS handler gives its close_notify 3 s, then closes the socket anyway), or that starts
 * its lingering clock before the response has left, cuts that end off.
 *
 * <p>The clients here reach the proxy through a {@link SlowLink} that stops reading for longer than those bounds
 * once their requests are sent. For the end of a response to wait in the proxy, the response must be larger than what
 * the proxy's kernel holds towards the link (about 130-300 KiB: Linux grows the buffer as it goes) and small enough
 * that the proxy read all of it from the backend before its write buffer filled.
 * Rather than guess where that lies, the clients ask for sizes {@link #STEP} apart across the whole range, each on
 * its own connection, so some land in it whatever the kernel does.
 */
class SlowClientCloseTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    /** The listener's idle timeout in the tests of how long a client that never reads is kept. */
    static final Duration IDLE = Duration.ofSeconds(2);
    static final int SMALLEST = 128 << 10;
    static final int LARGEST = 448 << 10;
    /** Under half the width of the range whose end waits in the proxy (about 32 KiB in runs of this test). */
    static final int STEP = 16 << 10;

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    private final List<MtlsClient> clients = new ArrayList<>();
    private SlowLink link;

    @AfterEach
    void closeClients() throws IOException {
        for (MtlsClient client : clients) {
            client.close();
        }
        if (link != null) {
            link.close();
        }
    }

    @Test
    void clientsThatAskedForCloseGetTheWholeResponseThoughTheyReadItsEndLate() throws Exception {
        fixture.start(scenario());
        List<MtlsClient> clients = slowClients();
        link.pause();
        for (int i = 0; i < clients.size(); i++) {
            clients.get(i).send(download(i) + "Connection: close\r\n\r\n");
        }
        Thread.sleep(4_000); // longer than the 3 s Netty's close gives what is queued

        link.resume();

        assertWholeDownloads(clients);
    }

    @Test
    void clientsThatAskedForCloseAndSentMoreGetTheWholeResponseThoughTheyReadItsEndLate() throws Exception {
        fixture.start(scenario());
        List<MtlsClient> clients = slowClients();
        link.pause();
        for (int i = 0; i < clients.size(); i++) {
            // The request pipelined behind one that asked for close makes the close linger (LingeringClose).
            clients.get(i).send(download(i) + "Connection: close\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
        }
        // The clients send nothing meanwhile: longer than the quiet time and the 3 s Netty's close then takes.
        Thread.sleep(LingeringClose.QUIET.plusSeconds(4).toMillis());

        link.resume();

        assertWholeDownloads(clients);
    }

    @Test
    void aClientThatStopsReadingForGoodIsClosedAfterTheIdleTimeout() throws Exception {
        RunningProxy proxy = fixture.start(scenario().idleTimeout(IDLE));
        List<MtlsClient> clients = slowClients();
        link.pause();
        long start = System.nanoTime();
        for (int i = 0; i < clients.size(); i++) {
            clients.get(i).send(download(i) + "Connection: close\r\n\r\n");
        }

        // Each connection either closed once its response left, or waits for a client that never reads again.
        await().atMost(IDLE.plusSeconds(10)).until(() -> openConnections(proxy) == 0);
        assertThat(Duration.ofNanos(System.nanoTime() - start)).as("not before the idle timeout")
                .isGreaterThanOrEqualTo(IDLE);
    }

    @Test
    void aClientThatKeepsSendingButNeverReadsTheEndIsClosedAfterTheIdleTimeout() throws Exception {
        // Against RFC 9112 9.6, each client sends more after asking for close, once its response is complete at the
        // proxy: the proxy, which still reads while the end of the response waits, drops it, but it is traffic.
        // Only that nothing of the response leaves may end such a connection, as nginx's send_timeout would.
        RunningProxy proxy = fixture.start(scenario().idleTimeout(IDLE));
        List<MtlsClient> clients = slowClients();
        link.pause();
        for (int i = 0; i < clients.size(); i++) {
            clients.get(i).send(download(i) + "Connection: close\r\n\r\n");
        }
        Thread.sleep(1_000);
        long start = System.nanoTime();
        // Found idle between one and two idle timeouts, then the 3 s Netty's TLS handler gives its close_notify.
        long deadline = start + IDLE.multipliedBy(2).plusSeconds(3 + 3).toNanos();

        while (openConnections(proxy) > 0 && System.nanoTime() < deadline) {
            for (MtlsClient client : clients) {
                sendQuietly(client, "x");
            }
            Thread.sleep(250);
        }

        assertThat(openConnections(proxy)).as("connections left open").isZero();
    }

    private RunningProxy.Builder scenario() {
        return RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders-api", "/", "shop", "orders");
    }

    private static double openConnections(RunningProxy proxy) {
        return proxy.metrics().get("mtls.proxy.connections.open").gauge().value();
    }

    /** A client whose connection the proxy closed cannot send: that is what the test waits for. */
    private static void sendQuietly(MtlsClient client, String text) {
        try {
            client.send(text);
        } catch (IOException closed) {
            // expected once the proxy gave up on it
        }
    }

    private static String download(int client) {
        return "GET /download?bytes=" + size(client) + " HTTP/1.1\r\nHost: localhost\r\n";
    }

    private static int size(int client) {
        return SMALLEST + client * STEP;
    }

    private List<MtlsClient> slowClients() throws Exception {
        link = SlowLink.to(fixture.proxy().address());
        SSLContext context = MtlsClient.clientContext(fixture.pki().root(), fixture.pki().client(ORDERS));
        for (int size = SMALLEST; size <= LARGEST; size += STEP) {
            clients.add(MtlsClient.connect(link.open(), context));
        }
        return clients;
    }

    /** Reads every response to its end, then fails naming each one that was cut short or corrupted. */
    private static void assertWholeDownloads(List<MtlsClient> clients) throws Exception {
        List<String> faults = new ArrayList<>();
        for (int i = 0; i < clients.size(); i++) {
            BodyPatternCheck check = new BodyPatternCheck(TestBackend.PatternStream.PATTERN);
            try {
                long received = clients.get(i).readResponseDiscardingBody(check);
                if (received != size(i) || check.firstMismatch() != -1) {
                    faults.add(size(i) + " bytes: " + received + " received, first corrupted byte "
                            + check.firstMismatch());
                } else if (!clients.get(i).closedWithin(5_000)) {
                    faults.add(size(i) + " bytes: whole, but the proxy did not close after it");
                }
            } catch (IOException cutShort) {
                faults.add(size(i) + " bytes: cut after " + check.count() + " (" + cutShort + ")");
            }
        }
        assertThat(faults).as("responses not received whole").isEmpty();
    }
}
