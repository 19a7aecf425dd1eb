package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.Sockets;
import dev.mtlsproxy.core.testing.StalledHandshake;
import dev.mtlsproxy.core.testing.TestBackend;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.concurrent.EventExecutor;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A drain must not lose a request the client has sent or is about to send. Only a keep-alive connection that has
 * answered a request and read nothing of the next one is closed at once (clients retry a request whose reused
 * connection closed); a connection not answered yet, in its handshake or before its first request, and one with part
 * of a request read, are served once more, with {@code Connection: close}: no client retries a request that failed
 * on a fresh connection, nor a POST. One that has read nothing gets a short grace for its first bytes, then closes
 * as an idle one; none holds the drain past the handshake timeout, the idle timeout or the drain deadline.
 *
 * <p>Every scenario starts the drain at a known point: once {@link #drainStarted} returns, every connection has had
 * its drain event, whatever the client sends after it.
 */
class DrainServesRequestsOnTheirWayTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    final LogCapture log = LogCapture.of(ProxyServer.class);

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    @Test
    void aPostSentAfterTheDrainStartedOnAConnectionWhoseHandshakeIsDoneIsServed() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        CompletableFuture<Boolean> drained;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> proxy.count("mtls.proxy.tls.handshakes", "result", "success") == 1);
            drained = drainStarted(proxy);

            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
                    + "x".repeat(100_000));
            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("hello from backend\n");
            assertThat(response.header("connection")).isEqualTo("close");
            TestBackend.Recorded upload = fixture.backend().nextRequest(5, TimeUnit.SECONDS);
            assertThat(upload.method()).isEqualTo("POST");
            assertThat(upload.bodyBytes()).as("the whole body").isEqualTo(100_000);
            assertThat(client.closedWithin(2_000)).as("then the proxy's side closes").isTrue();
        }
        assertThat(drained.get(10, TimeUnit.SECONDS)).as("drained once the client closed").isTrue();
    }

    @Test
    void aClientStillInItsHandshakeWhenTheDrainStartsIsServed() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        StalledHandshake handshake = stalledHandshake(proxy);

        CompletableFuture<Boolean> drained = drainStarted(proxy);
        try (MtlsClient client = handshake.resume()) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).bodyBytes()).isEqualTo(5);
            assertThat(client.closedWithin(2_000)).isTrue();
        }
        assertThat(drained.get(10, TimeUnit.SECONDS)).isTrue();
    }

    @Test
    void aKeepAliveConnectionWithHalfARequestHeadReadFinishesThatRequest() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        CompletableFuture<Boolean> drained;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hello").status()).isEqualTo(200);
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();
            AtomicLong read = bytesReadBy(proxy);

            // Whole lines of the head: the proxy's decoder takes them in, and has no request to show for them yet.
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\n");
            await().atMost(Duration.ofSeconds(5)).until(() -> read.get() > 0);
            drained = drainStarted(proxy);
            client.send("Content-Length: 5\r\n\r\nhello");
            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).bodyBytes()).isEqualTo(5);
            assertThat(client.closedWithin(2_000)).isTrue();
        }
        assertThat(drained.get(10, TimeUnit.SECONDS)).isTrue();
    }

    @Test
    void aKeepAliveConnectionWithHalfABodyReadFinishesThatRequest() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        CompletableFuture<Boolean> drained;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hello").status()).isEqualTo(200);
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();
            AtomicLong read = bytesReadBy(proxy);

            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhello");
            await().atMost(Duration.ofSeconds(5)).until(() -> read.get() > 0);
            drained = drainStarted(proxy);
            client.send("world");
            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).bodyBytes()).isEqualTo(10);
            assertThat(client.closedWithin(2_000)).isTrue();
        }
        assertThat(drained.get(10, TimeUnit.SECONDS)).isTrue();
    }

    @Test
    void anIdleKeepAliveConnectionIsStillClosedAtOnce() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/hello").status()).isEqualTo(200);

            CompletableFuture<Boolean> drained = drainStarted(proxy);

            assertThat(client.closedWithin(1_000)).as("closed at once").isTrue();
            assertThat(drained.get(2, TimeUnit.SECONDS)).isTrue();
        }
    }

    @Test
    void aConnectionThatNeverStartsItsHandshakeHoldsTheDrainOnlyUntilTheHandshakeTimeout() throws Exception {
        Duration handshakeTimeout = Duration.ofSeconds(1);
        RunningProxy proxy = fixture.start(scenario().handshakeTimeout(handshakeTimeout));
        try (Socket silent = new Socket(proxy.address().getAddress(), proxy.address().getPort())) {
            await().atMost(Duration.ofSeconds(5)).until(() -> proxy.server().openConnections() == 1);
            long started = System.nanoTime();
            CompletableFuture<Boolean> drained = drainStarted(proxy);

            assertThat(Sockets.closedWithin(silent, 300)).as("kept: a ClientHello may be on its way").isFalse();
            assertThat(drained.get(10, TimeUnit.SECONDS)).as("closed by the handshake timeout").isTrue();
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(handshakeTimeout.plusSeconds(3));
            assertThat(Sockets.closedWithin(silent, 1_000)).isTrue();
        }
    }

    @Test
    void aHandshakeThatNeverEndsHoldsTheDrainOnlyUntilTheHandshakeTimeout() throws Exception {
        Duration handshakeTimeout = Duration.ofSeconds(2);
        RunningProxy proxy = fixture.start(scenario().handshakeTimeout(handshakeTimeout));
        try (StalledHandshake stalled = stalledHandshake(proxy)) {
            CompletableFuture<Boolean> drained = drainStarted(proxy);

            assertThat(stalled.closedByServerWithin(Duration.ofMillis(300)))
                    .as("kept: the client may finish its handshake and send a request").isFalse();
            assertThat(drained.get(10, TimeUnit.SECONDS)).as("closed by the handshake timeout").isTrue();
            long now = System.nanoTime();
            assertThat(stalled.closedByServerWithin(Duration.ofSeconds(1))).isTrue();
            // The timeout runs from the proxy's accept: after the connect, before the proxy's flight.
            assertThat(Duration.ofNanos(now - stalled.connectedAt())).isGreaterThanOrEqualTo(handshakeTimeout);
            assertThat(Duration.ofNanos(now - stalled.stalledAt())).isLessThan(handshakeTimeout.plusSeconds(1));
            assertThat(proxy.count("mtls.proxy.tls.handshakes", "result", "failure", "reason", "handshake_timeout"))
                    .isEqualTo(1);
        }
    }

    @Test
    void aConnectionThatNeverSendsARequestHoldsTheDrainOnlyUntilTheIdleTimeout() throws Exception {
        Duration idleTimeout = Duration.ofSeconds(1);
        RunningProxy proxy = fixture.start(scenario().idleTimeout(idleTimeout));
        try (MtlsClient silent = fixture.connect(ORDERS)) {
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> proxy.count("mtls.proxy.tls.handshakes", "result", "success") == 1);
            long started = System.nanoTime();
            CompletableFuture<Boolean> drained = drainStarted(proxy);

            assertThat(silent.closedWithin(300)).as("kept: its first request may be on its way").isFalse();
            assertThat(drained.get(10, TimeUnit.SECONDS)).as("closed by the idle timeout").isTrue();
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(idleTimeout.plusSeconds(3));
            assertThat(silent.closedWithin(1_000)).isTrue();
        }
    }

    @Test
    void aConnectionThatNeverSendsARequestIsClosedAfterTheFirstRequestGrace() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        try (MtlsClient silent = fixture.connect(ORDERS)) {
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> proxy.count("mtls.proxy.tls.handshakes", "result", "success") == 1);
            long started = System.nanoTime();
            CompletableFuture<Boolean> drained = drainStarted(proxy);

            assertThat(silent.closedWithin(1_000)).as("kept: its first request may be on its way").isFalse();
            assertThat(drained.get(10, TimeUnit.SECONDS)).as("drained, not cut at the 10 s deadline").isTrue();
            assertThat(Duration.ofNanos(System.nanoTime() - started))
                    .isGreaterThanOrEqualTo(ExchangeSequencer.FIRST_REQUEST_GRACE)
                    .isLessThan(ExchangeSequencer.FIRST_REQUEST_GRACE.plusSeconds(3));
            assertThat(silent.closedWithin(1_000)).isTrue();
        }
    }

    @Test
    void theGraceOfAClientStillInItsHandshakeStartsWhenTheHandshakeEnds() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        StalledHandshake handshake = stalledHandshake(proxy);
        CompletableFuture<Boolean> drained = drainStarted(proxy);
        long grace = ExchangeSequencer.FIRST_REQUEST_GRACE.toMillis();
        Thread.sleep(grace + 500);
        try (MtlsClient client = handshake.resume()) {
            Thread.sleep(grace / 2);
            client.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("connection")).isEqualTo("close");
        }
        assertThat(drained.get(10, TimeUnit.SECONDS)).isTrue();
    }

    @Test
    void aConnectionThatNeverSendsARequestIsCutAtADrainDeadlineShorterThanTheGrace() throws Exception {
        RunningProxy proxy = fixture.start(scenario());
        try (MtlsClient silent = fixture.connect(ORDERS)) {
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> proxy.count("mtls.proxy.tls.handshakes", "result", "success") == 1);
            long started = System.nanoTime();

            CompletableFuture<Boolean> drained = drainStarted(proxy, Duration.ofMillis(500));

            assertThat(drained.get(10, TimeUnit.SECONDS)).as("cut, not drained").isFalse();
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(5));
            assertThat(silent.closedWithin(2_000)).isTrue();
        }
        await().atMost(Duration.ofSeconds(2)).until(() -> proxy.server().openConnections() == 0);
    }

    /** A client of {@code ORDERS} whose handshake is held where the proxy asked for its certificate. */
    private StalledHandshake stalledHandshake(RunningProxy proxy) throws Exception {
        return StalledHandshake.at(proxy.address(), fixture.pki().root(), fixture.pki().client(ORDERS));
    }

    private RunningProxy.Builder scenario() {
        return RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders-api", "/", "shop", "orders");
    }

    private CompletableFuture<Boolean> drainStarted(RunningProxy proxy) throws Exception {
        return drainStarted(proxy, Duration.ofSeconds(10));
    }

    private CompletableFuture<Boolean> drainStarted(RunningProxy proxy, Duration timeout) throws Exception {
        return drainStarted(proxy, log, timeout);
    }

    /**
     * Stops accepting and starts the drain, returning once every open connection has had its drain event: the
     * drain hands the event to each connection's event loop before it logs, and a loop runs its tasks in order.
     * {@code log} captures {@link ProxyServer}'s log.
     */
    static CompletableFuture<Boolean> drainStarted(RunningProxy proxy, LogCapture log, Duration timeout)
            throws Exception {
        proxy.server().stopAccepting();
        CompletableFuture<Boolean> drained = CompletableFuture.supplyAsync(() -> {
            try {
                return proxy.server().drain(timeout);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        });
        log.await("event=draining");
        for (EventExecutor loop : proxy.server().eventLoops()) {
            loop.submit(() -> { }).get(5, TimeUnit.SECONDS);
        }
        return drained;
    }

    /**
     * Counts what the proxy reads from its one client connection from now on, counted once the read has been through
     * the whole pipeline: once the count moves, the bytes have reached the HTTP decoder.
     */
    private static AtomicLong bytesReadBy(RunningProxy proxy) throws Exception {
        assertThat(proxy.server().clientConnections()).hasSize(1);
        return bytesReadBy(proxy.server().clientConnections().get(0));
    }

    /** As {@link #bytesReadBy(RunningProxy)}, for one client connection among several. */
    static AtomicLong bytesReadBy(Channel connection) throws Exception {
        AtomicLong read = new AtomicLong();
        ChannelInboundHandlerAdapter counter = new ChannelInboundHandlerAdapter() {
            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                int bytes = msg instanceof ByteBuf buf ? buf.readableBytes() : 0;
                ctx.fireChannelRead(msg);
                read.addAndGet(bytes);
            }
        };
        // Added on the connection's event loop, and waited for: added from another thread, a handler is skipped
        // until a task on that loop completes its addition, and the loop reads a socket before it runs its tasks,
        // so bytes the client sends at once could pass it uncounted (this failed on a busy machine).
        connection.eventLoop().submit(() -> connection.pipeline().addFirst("test-bytes-read", counter))
                .get(5, TimeUnit.SECONDS);
        return read;
    }
}
