package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.Sockets;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.IOException;
import java.net.Socket;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A WebSocket tunnel whose backend stops reading, then whose client goes away. Closing the tunnel lets the backend
 * take what was relayed to it first; a backend that never does must not hold its connection, and what the proxy
 * queued for it, until the proxy stops. Both sides of a closing tunnel are bounded by the listener's idle timeout,
 * and cutting the backend's side with the client's bytes still queued is logged and counted.
 *
 * <p>The proxy's end of the backend connection is watched in the kernel's table of TCP connections: the test never
 * reads from the backend socket, which would let the proxy's last writes complete.
 */
class AbandonedTunnelTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(4);

    @RegisterExtension
    static final LogCapture log = LogCapture.of(TunnelBackendDrain.class);

    @TempDir
    static Path dir;
    static TestPki pki;
    static SocketBackend plain;
    static SocketBackend tls;
    static RunningProxy proxy;
    /** The backends' TCP connections, each handed over once it answered the upgrade with 101. */
    static final BlockingQueue<Socket> switched = new LinkedBlockingQueue<>();
    /** Holds the backends' connections open, unread, until the tests are over. */
    static final CountDownLatch over = new CountDownLatch(1);

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        plain = SocketBackend.start("plain-unread-backend", tcp -> switchThenReadNothing(tcp, tcp));
        SSLContext context = pki.backendServer("unread", b -> b.addSanIpAddress("127.0.0.1")).serverContext();
        tls = SocketBackend.start("tls-unread-backend", tcp -> {
            SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(tcp, null, tcp.getPort(), false);
            socket.setUseClientMode(false);
            socket.startHandshake();
            switchThenReadNothing(socket, tcp);
        });
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("plain", plain.url())
                .backend("tls", BackendConfig.of(List.of(URI.create("https://" + tls.authority())),
                        BackendTlsConfig.trusting(pki.caPem())))
                .route("plain", "/plain", "plain", "orders")
                .route("tls", "/tls", "tls", "orders")
                .idleTimeout(IDLE_TIMEOUT)
                .start();
    }

    @AfterAll
    static void stop() throws IOException {
        over.countDown();
        if (proxy != null) {
            proxy.close();
        }
        for (SocketBackend backend : new SocketBackend[] {plain, tls}) {
            if (backend != null) {
                backend.close();
            }
        }
    }

    @ParameterizedTest(name = "{0} backend")
    @ValueSource(strings = {"plain", "tls"})
    void aTunnelItsClientLeftDoesNotKeepABackendThatReadsNothingForEver(String backend) throws Exception {
        double cutsBefore = proxy.count("mtls.proxy.backend.tunnel.cuts", "backend", backend);
        int cutLinesBefore = cutLines(backend).size();
        Tunnel tunnel = openTunnel(backend);
        Socket tcp = tunnel.tcp();
        MtlsClient client = tunnel.client();
        int proxyPort = tunnel.proxyPort();
        int backendPort = tunnel.backendPort();
        assertThat(Sockets.tcpState(proxyPort, backendPort)).isEqualTo("ESTABLISHED");

        // The client pushes until every buffer on the way to the backend is full, a queue in the proxy included...
        long pushed = pushUntilStalled(client);
        // ...then goes away.
        int clientPort = tcp.getLocalPort();
        tcp.close();

        // The listener's idle timeout at the latest ends the client side: the proxy closed its socket.
        await().atMost(IDLE_TIMEOUT.multipliedBy(3)).pollInterval(Duration.ofMillis(200))
                .untilAsserted(() -> assertThat(Sockets.tcpState(proxy.address().getPort(), clientPort))
                        .as("the proxy's end of the client connection").isNotIn("ESTABLISHED", "CLOSE_WAIT"));
        // The backend side is cut once it took nothing for one to two idle timeouts (the checks see its queue once a
        // timeout); without a bound it stays ESTABLISHED, with what is queued for it, until the proxy stops.
        await().atMost(IDLE_TIMEOUT.multipliedBy(3)).pollInterval(Duration.ofMillis(200))
                .untilAsserted(() -> assertThat(Sockets.tcpState(proxyPort, backendPort))
                        .as("the proxy's connection to a backend that reads nothing, after " + pushed
                                + " bytes pushed")
                        .isNotEqualTo("ESTABLISHED"));
        String cut = awaitNewCutLine(backend, cutLinesBefore);
        assertThat(queuedBytes(cut)).as("bytes the client sent that the backend never got, in " + cut).isPositive();
        assertThat(proxy.count("mtls.proxy.backend.tunnel.cuts", "backend", backend)).isEqualTo(cutsBefore + 1);
    }

    @ParameterizedTest(name = "{0} backend")
    @ValueSource(strings = {"plain", "tls"})
    void aBackendThatStopsReadingIsCutWhileItsClientStillWaits(String backend) throws Exception {
        double cutsBefore = proxy.count("mtls.proxy.backend.tunnel.cuts", "backend", backend);
        int cutLinesBefore = cutLines(backend).size();
        Tunnel tunnel = openTunnel(backend);
        long switchedAt = tunnel.switchedAt();
        Socket tcp = tunnel.tcp();
        MtlsClient client = tunnel.client();
        int proxyPort = tunnel.proxyPort();
        int backendPort = tunnel.backendPort();

        // The backend took nothing after its 101; the client fills every buffer on the way and stays, its write
        // blocked: the proxy reads it no more, and neither side moves.
        long pushed = pushUntilStalled(client);

        // Cut one to two idle timeouts after the backend stopped, with the tunnel (the checks see its queue once a
        // timeout). Not first closed as an idle tunnel whose backend then gets another timeout to take its bytes.
        await().atMost(IDLE_TIMEOUT.multipliedBy(2).plusSeconds(2).minusNanos(System.nanoTime() - switchedAt))
                .pollInterval(Duration.ofMillis(200))
                .untilAsserted(() -> assertThat(Sockets.tcpState(proxyPort, backendPort))
                        .as("the proxy's connection to a backend that reads nothing, after " + pushed
                                + " bytes pushed")
                        .isNotEqualTo("ESTABLISHED"));
        String cut = awaitNewCutLine(backend, cutLinesBefore);
        assertThat(queuedBytes(cut)).as("bytes the client sent that the backend never got, in " + cut).isPositive();
        assertThat(proxy.count("mtls.proxy.backend.tunnel.cuts", "backend", backend)).isEqualTo(cutsBefore + 1);
        int clientPort = tcp.getLocalPort();
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(200))
                .untilAsserted(() -> assertThat(Sockets.tcpState(proxy.address().getPort(), clientPort))
                        .as("the proxy's end of the client connection").isNotIn("ESTABLISHED", "CLOSE_WAIT"));
        tcp.close();
    }

    private static List<String> cutLines(String backend) {
        return log.lines().stream()
                .filter(line -> line.contains("event=tunnel_backend_cut") && line.contains("backend=" + backend + " "))
                .toList();
    }

    /** The cut logged for {@code backend} after the {@code before} ones earlier tests caused. */
    private static String awaitNewCutLine(String backend, int before) {
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(20))
                .until(() -> cutLines(backend).size() > before);
        return cutLines(backend).get(before);
    }

    private static long queuedBytes(String line) {
        return Long.parseLong(line.replaceFirst(".* queued_bytes=(\\d+) .*", "$1"));
    }

    /**
     * Writes through the tunnel on another thread until a write blocks for a second: nothing on the way takes more.
     * The write stays blocked until the test closes the connection under it.
     *
     * @return the bytes written
     */
    private static long pushUntilStalled(MtlsClient client) throws InterruptedException {
        AtomicLong pushed = new AtomicLong();
        Thread pusher = new Thread(() -> {
            byte[] piece = new byte[16 * 1024];
            try {
                while (true) {
                    client.output().write(piece);
                    pushed.addAndGet(piece.length);
                }
            } catch (IOException closed) {
                // the test closed the connection under the blocked write
            }
        }, "tunnel-pusher");
        pusher.setDaemon(true);
        pusher.start();
        long last = -1;
        while (pushed.get() != last) {
            last = pushed.get();
            Thread.sleep(1_000);
        }
        return last;
    }

    /** Answers the upgrade with 101, hands the connection to the test and reads nothing more from it. */
    /** A tunnel to {@code backend} as the client and the backend see it: the proxy's port towards the backend too. */
    private record Tunnel(Socket tcp, MtlsClient client, long switchedAt, int proxyPort, int backendPort) {
    }

    private static Tunnel openTunnel(String backend) throws Exception {
        Socket tcp = new Socket(proxy.address().getAddress(), proxy.address().getPort());
        MtlsClient client = MtlsClient.connect(tcp, MtlsClient.clientContext(pki.root(), pki.client(ORDERS)));
        client.send(ProtocolSwitchTest.UPGRADE.replace("/ws", "/" + backend));
        assertThat(client.readResponse().status()).isEqualTo(101);
        long switchedAt = System.nanoTime();
        Socket upstream = switched.poll(5, TimeUnit.SECONDS);
        assertThat(upstream).as("the backend's end of the tunnel").isNotNull();
        return new Tunnel(tcp, client, switchedAt, upstream.getPort(), upstream.getLocalPort());
    }

    private static void switchThenReadNothing(Socket socket, Socket tcp) throws IOException, InterruptedException {
        assertThat(SocketBackend.readHead(socket.getInputStream())).as("the upgrade request").isNotNull();
        socket.getOutputStream().write(ProtocolSwitchTest.SWITCHED.getBytes(ISO_8859_1));
        socket.getOutputStream().flush();
        switched.add(tcp);
        over.await();
    }
}
