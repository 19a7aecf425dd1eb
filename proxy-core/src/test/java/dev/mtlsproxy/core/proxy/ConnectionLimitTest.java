package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import com.sun.management.UnixOperatingSystemMXBean;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.ProcessLimits;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.Sockets;
import io.micrometer.core.instrument.Counter;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A listener holds at most {@code maxConnections} client connections open, authenticated or not; one more is closed
 * as soon as it is accepted, before any TLS, counted, and logged once per episode at the limit. A slot comes back
 * when a connection closes, and for one that never finishes its handshake, when the handshake timeout closes it.
 */
class ConnectionLimitTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final int LIMIT = 3;
    static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(1);
    /** Far below anything a timeout would take: a refused connection learns at once. */
    static final long AT_ONCE_MILLIS = 2_000;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(ConnectionLimit.class);

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .maxConnections(LIMIT)
            .handshakeTimeout(HANDSHAKE_TIMEOUT)
            .backend("app", backend.url())
            .route("app", "/", "app", "orders"));

    private final List<AutoCloseable> held = new ArrayList<>();

    @AfterEach
    void closeHeld() throws Exception {
        for (AutoCloseable c : held) {
            c.close();
        }
    }

    @Test
    void threeAuthenticatedConnectionsAreServedAFourthIsClosedBeforeItsHandshakeAndAFreedSlotServesAgain()
            throws Exception {
        List<MtlsClient> clients = new ArrayList<>();
        for (int i = 0; i < LIMIT; i++) {
            MtlsClient client = hold(fixture.connect(ORDERS));
            assertThat(client.get("/hello").status()).as("connection " + (i + 1)).isEqualTo(200);
            clients.add(client);
        }

        assertRefusedBeforeTheHandshake();
        assertThat(refused()).isEqualTo(1);
        assertThat(count("mtls.proxy.connections.accepted")).as("a refused connection is not accepted").isEqualTo(3);
        assertThat(count("mtls.proxy.tls.handshakes", "result", "failure"))
                .as("no handshake was started, so none failed").isZero();
        for (MtlsClient client : clients) {
            assertThat(client.get("/hello").status()).as("the open ones are served as before").isEqualTo(200);
        }

        clients.get(0).close();
        awaitOpen(LIMIT - 1);
        assertThat(hold(fixture.connect(ORDERS)).get("/hello").status()).isEqualTo(200);
        assertThat(refused()).isEqualTo(1);
    }

    @Test
    void connectionsThatNeverFinishTheirHandshakeHoldTheirSlotsUntilTheHandshakeTimeoutFreesThem() throws Exception {
        Socket silent = hold(plainSocket());
        Socket silentToo = hold(plainSocket());
        Socket midHandshake = hold(plainSocket());
        OutputStream out = midHandshake.getOutputStream();
        // A TLS record header announcing a 512-byte handshake record, and its first byte: a ClientHello begun.
        out.write(new byte[] {0x16, 0x03, 0x01, 0x02, 0x00, 0x01});
        out.flush();
        awaitOpen(LIMIT);

        assertRefusedBeforeTheHandshake();
        assertThat(refused()).isEqualTo(1);

        for (Socket socket : List.of(silent, silentToo, midHandshake)) {
            assertThat(Sockets.closedWithin(socket, 5_000)).as("closed at the handshake timeout").isTrue();
        }
        awaitOpen(0);
        assertThat(count("mtls.proxy.tls.handshakes", "reason", "handshake_timeout")).isEqualTo(3);
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hello").status()).isEqualTo(200);
        }
    }

    @Test
    void reachingTheLimitIsLoggedOnceHoweverManyAreRefusedAndAgainAfterItCleared() throws Exception {
        int before = reachedLines();
        List<MtlsClient> clients = new ArrayList<>();
        for (int i = 0; i < LIMIT; i++) {
            clients.add(hold(fixture.connect(ORDERS)));
        }
        for (int i = 0; i < 5; i++) {
            try (Socket extra = plainSocket()) {
                assertThat(Sockets.closedWithin(extra, (int) AT_ONCE_MILLIS)).as("connection over the limit").isTrue();
            }
        }
        assertThat(refused()).isEqualTo(5);
        log.await("event=connection_limit_reached", "listener=main", "limit=3");
        assertThat(reachedLines() - before).as("one line for five refusals").isEqualTo(1);

        clients.get(0).close();
        log.await("event=connection_limit_cleared", "listener=main", "refused=5");
        hold(fixture.connect(ORDERS));
        try (Socket extra = plainSocket()) {
            assertThat(Sockets.closedWithin(extra, (int) AT_ONCE_MILLIS)).isTrue();
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> reachedLines() - before == 2);
    }

    @Test
    void aReloadThatChangesTheLimitAppliesItToNewConnectionsAndLeavesOpenOnesAlone() throws Exception {
        for (int i = 0; i < LIMIT; i++) {
            hold(fixture.connect(ORDERS));
        }
        assertRefusedBeforeTheHandshake();

        fixture.proxy().reload(c -> withLimit(c, 4));
        assertThat(gauge("mtls.proxy.connections.limit")).isEqualTo(4);
        MtlsClient fourth = hold(fixture.connect(ORDERS));
        assertThat(fourth.get("/hello").status()).isEqualTo(200);
        assertRefusedBeforeTheHandshake();

        fixture.proxy().reload(c -> withLimit(c, 2));
        assertThat(fourth.get("/hello").status()).as("open over a lowered limit: left to finish").isEqualTo(200);
        assertThat(gauge("mtls.proxy.connections.open")).isEqualTo(4);
        assertRefusedBeforeTheHandshake();
    }

    @Test
    void withoutMaxConnectionsTheLimitIsTheLowerOfTheDescriptorAndTheMemoryShare() throws Exception {
        var os = (UnixOperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long byDescriptors = (os.getMaxFileDescriptorCount() - 256) / 2;
        long byMemory = os.getTotalMemorySize() / 2 / (64 * 1024);

        assertThat(ProxyServer.processLimits()).as("both read, the memory as the JDK sees it in a container too")
                .isEqualTo(new ProcessLimits(os.getMaxFileDescriptorCount(), os.getTotalMemorySize()));
        try (LogCapture start = LogCapture.of(ProxyServer.class);
                RunningProxy unconfigured = RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("app", fixture.backend().url())
                .route("app", "/", "app", "orders")
                .start()) {
            assertThat(unconfigured.metrics().get("mtls.proxy.connections.limit").tag("listener", "main").gauge()
                    .value()).isEqualTo(Math.min(byDescriptors, byMemory));
            assertThat(start.await("event=listening")).endsWith(" max_connections=" + Math.min(byDescriptors,
                    byMemory) + " (default, from descriptor_limit=" + os.getMaxFileDescriptorCount()
                    + " memory_bytes=" + os.getTotalMemorySize() + ")");
        }
    }

    /** The start log says where the limit in force came from, a configured one too (it said nothing). */
    @Test
    void aConfiguredLimitIsLoggedAsConfigured() throws Exception {
        try (LogCapture start = LogCapture.of(ProxyServer.class);
                RunningProxy configured = RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .maxConnections(LIMIT)
                .backend("app", fixture.backend().url())
                .route("app", "/", "app", "orders")
                .start()) {
            assertThat(configured.metrics().get("mtls.proxy.connections.limit").tag("listener", "main").gauge()
                    .value()).isEqualTo(LIMIT);
            assertThat(start.await("event=listening")).endsWith(" max_connections=" + LIMIT + " (configured)");
        }
    }

    private static ProxyConfig withLimit(ProxyConfig c, int max) {
        ListenerConfig l = c.listeners().get(0);
        return c.withListeners(List.of(new ListenerConfig(l.name(), l.address(), l.tls(), l.limits(),
                l.idleTimeout(), l.handshakeTimeout(), max)));
    }

    /**
     * An authenticated client over the limit: its handshake fails because the proxy closed the connection, at once;
     * a timeout (the client's read timeout, or the proxy's handshake timeout) would not be a refusal.
     */
    private void assertRefusedBeforeTheHandshake() {
        double refusedBefore = refused();
        long start = System.nanoTime();
        Throwable failure = catchThrowable(() -> fixture.connect(ORDERS).close());
        long millis = (System.nanoTime() - start) / 1_000_000;
        assertThat(failure).as("the handshake over the limit").isInstanceOf(IOException.class)
                .isNotInstanceOf(SocketTimeoutException.class);
        assertThat(millis).as("refused at once").isLessThan(AT_ONCE_MILLIS);
        assertThat(refused()).isEqualTo(refusedBefore + 1);
    }

    private Socket plainSocket() throws IOException {
        InetSocketAddress proxy = fixture.proxy().address();
        return new Socket(proxy.getAddress(), proxy.getPort());
    }

    private <T extends AutoCloseable> T hold(T connection) {
        held.add(connection);
        return connection;
    }

    private void awaitOpen(int open) {
        await().atMost(Duration.ofSeconds(10)).until(() -> gauge("mtls.proxy.connections.open") == open);
    }

    private double refused() {
        return count("mtls.proxy.connections.refused", "reason", "limit");
    }

    private double count(String name, String... tags) {
        String[] all = new String[tags.length + 2];
        all[0] = "listener";
        all[1] = "main";
        System.arraycopy(tags, 0, all, 2, tags.length);
        return fixture.proxy().metrics().find(name).tags(all).counters().stream()
                .mapToDouble(Counter::count).sum();
    }

    private double gauge(String name) {
        return fixture.proxy().metrics().get(name).tag("listener", "main").gauge().value();
    }

    private static int reachedLines() {
        return (int) log.lines().stream().filter(l -> l.contains("event=connection_limit_reached")).count();
    }
}
