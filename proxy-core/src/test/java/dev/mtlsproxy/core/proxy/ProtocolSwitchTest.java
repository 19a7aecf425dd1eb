package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A client and a backend try to turn an HTTP connection into a byte stream that no route judged: a backend answers
 * 101 to a request that asked for no WebSocket (or for h2c, or from HTTP/1.0, or without the handshake's key), or
 * answers a WebSocket request with a 101 that is not the answer to it (another protocol, a wrong
 * {@code Sec-WebSocket-Accept}, a body); a backend declines and keeps talking. The client must get an ordinary
 * response or a 502, never a tunnel, and what it sends next must be judged as a request, never reach the backend as
 * bytes. The backend is a raw socket driven by each test, which sees the exact bytes the proxy sends it.
 */
class ProtocolSwitchTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String KEY = "dGhlIHNhbXBsZSBub25jZQ==";
    /** RFC 6455's own example: the accept value for {@link #KEY}. */
    static final String ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    static final String UPGRADE = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    static final String SWITCHED = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: " + ACCEPT + "\r\n\r\n";
    /** A request no rule allows: if it reaches the backend, it did so unjudged. */
    static final String SMUGGLED = "GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n";

    @TempDir
    static Path dir;
    static TestPki pki;
    static HandDrivenBackend backend;
    static RunningProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = HandDrivenBackend.start();
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("chat", backend.url())
                .route(new RouteConfig("ws", null, "/ws", List.of(), "chat", List.of(), List.of(
                        new RuleConfig(List.of("orders"), null, List.of("GET", "HEAD", "POST"), null, null)),
                        null, null))
                .route("admin", "/admin", "chat")
                .idleTimeout(Duration.ofSeconds(4))
                .start();
    }

    @AfterAll
    static void stop() throws IOException {
        if (proxy != null) {
            proxy.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    @AfterEach
    void noBackendConnectionLeftOver() throws Exception {
        // A test that missed a connection would hand it to the next one.
        Socket left;
        while ((left = backend.accepted.poll(100, TimeUnit.MILLISECONDS)) != null) {
            left.close();
        }
    }

    // ---- a 101 the client did not ask for --------------------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n",
        // h2c is removed, so the backend sees a plain GET; it switches all the same.
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        // RFC 6455 upgrades HTTP/1.1 only.
        "GET /ws HTTP/1.0\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        // The handshake's headers without the upgrade: end-to-end fields to the proxy, and no upgrade.
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nSec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                + "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        // A WebSocket handshake is a GET (RFC 6455 4.1); the rule allows HEAD and POST on /ws too.
        "HEAD /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "POST /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
        // Without its key the 101 cannot be told from any 101 the backend sends (a status the client can choose).
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\n\r\n",
    })
    void aSwitchToARequestThatAskedForNoWebSocketIsA502AndNeverATunnel(String request) throws Exception {
        try (MtlsClient client = connect()) {
            client.send(request);
            BackendConnection upstream = backend.next();
            String head = upstream.readHead();
            assertThat(head).as("no upgrade is forwarded").doesNotContainIgnoringCase("upgrade");
            upstream.write(SWITCHED);

            Response response = request.startsWith("HEAD") ? client.readHeadResponse() : client.readResponse();
            assertThat(response.status()).isEqualTo(502);
            assertThatTheConnectionIsStillJudged(client, upstream);
        }
    }

    // ---- a 101 that does not answer the WebSocket request ------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + ACCEPT + "\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: " + ACCEPT + "\r\n\r\n",
        // The answer to another key: a backend that echoes a status the client chose, say.
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        // A client must fail a handshake whose answer lacks Connection: Upgrade (RFC 6455 4.1).
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + ACCEPT + "\r\n\r\n",
        // No 1xx has content (RFC 9110 15.2): a framed body makes what follows both a body and the tunnel.
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: " + ACCEPT + "\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: " + ACCEPT + "\r\nContent-Length: 5\r\n\r\nhello",
        // HTTP/1.0 defines no 1xx status (RFC 9110 15.2) and no Upgrade: a backend speaking it cannot be switching.
        "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: " + ACCEPT + "\r\n\r\n",
    })
    void aSwitchThatDoesNotAnswerTheWebSocketRequestIsA502AndNeverATunnel(String answer) throws Exception {
        try (MtlsClient client = connect()) {
            client.send(UPGRADE);
            BackendConnection upstream = backend.next();
            assertThat(upstream.readHead()).containsIgnoringCase("upgrade: websocket\r\n")
                    .contains("Sec-WebSocket-Key: " + KEY + "\r\n");
            upstream.write(answer);

            assertThat(client.readResponse().status()).isEqualTo(502);
            assertThatTheConnectionIsStillJudged(client, upstream);
        }
    }

    @Test
    void bytesTheClientSentBehindARefusedSwitchAreReadAsTheNextRequest() throws Exception {
        try (MtlsClient client = connect()) {
            // Sent at once: a client hoping its bytes become "frames" of a tunnel the backend opens unasked.
            client.send(UPGRADE + SMUGGLED);
            BackendConnection upstream = backend.next();
            upstream.readHead();
            upstream.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");

            assertThat(client.readResponse().status()).isEqualTo(502);
            assertThat(client.readResponse().status()).as("judged, not relayed").isEqualTo(403);
            assertThat(upstream.closedWithin(5_000)).isTrue();
            assertThat(upstream.received()).isEmpty();
        }
    }

    @Test
    void aDeclinedUpgradeLeavesWhatTheClientSentBehindItToBeJudged() throws Exception {
        try (MtlsClient client = connect()) {
            // The classic WebSocket smuggling: the backend refuses the version with 426, a proxy that took the
            // request alone for the switch would now relay the next request unchecked.
            client.send(UPGRADE.replace("Version: 13", "Version: 1") + SMUGGLED);
            BackendConnection upstream = backend.next();
            upstream.readHead();
            upstream.write("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n");

            assertThat(client.readResponse().status()).isEqualTo(426);
            assertThat(client.readResponse().status()).isEqualTo(403);
            assertThat(upstream.nothingWithin(500)).as("the backend got nothing more").isTrue();
        }
    }

    @Test
    void aBackendThatAnswersTheUpgradeWith200AndKeepsTalkingStaysHttp() throws Exception {
        try (MtlsClient client = connect()) {
            client.send(UPGRADE);
            BackendConnection upstream = backend.next();
            upstream.readHead();
            // A 200 in the upgrade's clothes, then bytes as if the switch had happened.
            upstream.write("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\n"
                    + "no\u0081\u0005hello");

            Response declined = client.readResponse();
            assertThat(declined.status()).isEqualTo(200);
            assertThat(declined.bodyText()).isEqualTo("no");
            assertThat(declined.header("upgrade")).isNull();
            assertThat(upstream.closedWithin(5_000)).as("bytes past the response close the backend connection")
                    .isTrue();
            assertThat(client.get("/admin").status()).as("the next request is judged").isEqualTo(403);
        }
    }

    // ---- a switch that does answer it -------------------------------------------------------------------------

    @Test
    void aSwitchAfterEarlyHintsOpensTheTunnelAndBytesPassExactlyBothWays() throws Exception {
        try (MtlsClient client = connect()) {
            client.send(UPGRADE.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n"));
            BackendConnection upstream = backend.next();
            assertThat(upstream.readHead()).doesNotContainIgnoringCase("expect");
            upstream.write("HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n" + SWITCHED + "greeting");

            Response interim = client.readResponse();
            // The proxy answers an expectation itself, as for any request without a body; the 103 is dropped.
            if (interim.status() == 100) {
                interim = client.readResponse();
            }
            assertThat(interim.status()).isEqualTo(101);
            assertThat(interim.header("sec-websocket-accept")).isEqualTo(ACCEPT);
            assertThat(new String(client.input().readNBytes(8), ISO_8859_1)).isEqualTo("greeting");

            // Once switched, the bytes are the tunnel's: even a request line is the WebSocket's business now.
            client.send(SMUGGLED);
            assertThat(new String(upstream.readExactly(SMUGGLED.length()), ISO_8859_1)).isEqualTo(SMUGGLED);
            upstream.write("back");
            assertThat(new String(client.input().readNBytes(4), ISO_8859_1)).isEqualTo("back");
        }
    }

    @Test
    void anUpgradePipelinedBehindARequestSwitchesOnlyOnceThatRequestIsAnswered() throws Exception {
        try (MtlsClient client = connect()) {
            client.send("GET /ws/first HTTP/1.1\r\nHost: localhost\r\n\r\n" + UPGRADE);
            BackendConnection upstream = backend.next();
            assertThat(upstream.readHead()).startsWith("GET /ws/first ").doesNotContainIgnoringCase("upgrade");
            assertThat(upstream.nothingWithin(300)).as("the upgrade waits for the first answer").isTrue();
            upstream.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");

            assertThat(client.readResponse().bodyText()).isEqualTo("first");
            assertThat(upstream.readHead()).startsWith("GET /ws ").containsIgnoringCase("upgrade: websocket");
            upstream.write(SWITCHED);
            assertThat(client.readResponse().status()).isEqualTo(101);
            client.send("frame");
            assertThat(new String(upstream.readExactly(5), ISO_8859_1)).isEqualTo("frame");
        }
    }

    @Test
    void aTunnelEndsForBothWhenTheBackendCloses() throws Exception {
        try (MtlsClient client = connect()) {
            client.send(UPGRADE);
            BackendConnection upstream = backend.next();
            upstream.readHead();
            upstream.write(SWITCHED + "last words");
            upstream.socket.close();

            assertThat(client.readResponse().status()).isEqualTo(101);
            assertThat(new String(client.input().readNBytes(10), ISO_8859_1)).as("relayed before the close")
                    .isEqualTo("last words");
            assertThat(client.closedWithin(5_000)).isTrue();
        }
    }

    @Test
    void aTunnelEndsForBothWhenTheClientCloses() throws Exception {
        BackendConnection upstream;
        try (MtlsClient client = connect()) {
            client.send(UPGRADE);
            upstream = backend.next();
            upstream.readHead();
            upstream.write(SWITCHED);
            assertThat(client.readResponse().status()).isEqualTo(101);
            client.send("last words");
            assertThat(new String(upstream.readExactly(10), ISO_8859_1)).isEqualTo("last words");
        }
        assertThat(upstream.closedWithin(5_000)).isTrue();
    }

    @Test
    void aTunnelWithNoTrafficForTheIdleTimeoutIsClosed() throws Exception {
        try (MtlsClient client = connect()) {
            BackendConnection upstream = openTunnel(client);
            long opened = System.nanoTime();

            assertThat(client.closedWithin(10_000)).isTrue();
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).isGreaterThanOrEqualTo(Duration.ofSeconds(3));
            assertThat(upstream.closedWithin(5_000)).isTrue();
        }
    }

    @Test
    void aClientThatStopsReadingStopsTheBackendReadsInsteadOfGrowingTheHeap() throws Exception {
        try (MtlsClient client = connect()) {
            BackendConnection upstream = openTunnel(client);

            // The client reads nothing more: the backend's writes must stall once the buffers on the way are full
            // (socket buffers, a bounded amount in the proxy), not after the whole stream went into the proxy.
            long total = 128L << 20;
            Thread writer = upstream.writeFillerInBackground(total);
            long stalledAt = upstream.writtenOnceStalled(500, 30_000);
            assertThat(stalledAt).as("bytes the backend could write to a client that reads nothing")
                    .isLessThan(total);

            // Reading again resumes the flow, every byte in order.
            InputStream in = client.input();
            byte[] buffer = new byte[64 * 1024];
            long read = 0;
            while (read < total) {
                int n = in.read(buffer, 0, (int) Math.min(buffer.length, total - read));
                assertThat(n).as("stream ended at " + read).isPositive();
                for (int i = 0; i < n; i++) {
                    if (buffer[i] != HandDrivenBackend.filler(read + i)) {
                        throw new AssertionError("byte " + (read + i) + " differs");
                    }
                }
                read += n;
            }
            writer.join(10_000);
            assertThat(upstream.written()).isEqualTo(total);
        }
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    /**
     * After a refused switch: the backend connection is closed without having received another byte, and what the
     * client sends next is a request the proxy judges (here one no rule allows).
     */
    private static void assertThatTheConnectionIsStillJudged(MtlsClient client, BackendConnection upstream)
            throws Exception {
        assertThat(upstream.closedWithin(5_000)).as("the backend connection is closed, never pooled").isTrue();
        try {
            client.send(SMUGGLED);
            assertThat(client.readResponse().status()).as("the next bytes are a judged request").isEqualTo(403);
        } catch (IOException closed) {
            // a closed client connection is as good: nothing it sends goes anywhere
        }
        assertThat(upstream.received()).as("bytes the backend received after the request head").isEmpty();
        assertThat(backend.accepted.poll(200, TimeUnit.MILLISECONDS)).as("no other backend connection").isNull();
    }

    /** Sends the WebSocket handshake and plays the backend's valid 101: the tunnel is open when this returns. */
    private static BackendConnection openTunnel(MtlsClient client) throws Exception {
        client.send(UPGRADE);
        BackendConnection upstream = backend.next();
        upstream.readHead();
        upstream.write(SWITCHED);
        assertThat(client.readResponse().status()).isEqualTo(101);
        return upstream;
    }

    private static MtlsClient connect() throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }

    /** A plain-HTTP backend that hands each accepted connection to the test, which plays the backend on it. */
    static final class HandDrivenBackend implements AutoCloseable {
        final BlockingQueue<Socket> accepted = new LinkedBlockingQueue<>();
        private final ServerSocket socket;

        private HandDrivenBackend(ServerSocket socket) {
            this.socket = socket;
            Thread acceptor = new Thread(this::accept, "hand-driven-backend");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        static HandDrivenBackend start() throws IOException {
            return new HandDrivenBackend(new ServerSocket(0, 50, InetAddress.getLoopbackAddress()));
        }

        String url() {
            return "http://127.0.0.1:" + socket.getLocalPort();
        }

        BackendConnection next() throws Exception {
            Socket s = accepted.poll(5, TimeUnit.SECONDS);
            assertThat(s).as("a backend connection").isNotNull();
            return new BackendConnection(s);
        }

        /** The byte at position {@code i} of the stream {@link BackendConnection#writeFiller} writes. */
        static byte filler(long i) {
            return (byte) (i * 31 + (i >>> 11));
        }

        private void accept() {
            while (!socket.isClosed()) {
                try {
                    Socket connection = socket.accept();
                    connection.setTcpNoDelay(true);
                    accepted.add(connection);
                } catch (IOException e) {
                    return; // closed by the test
                }
            }
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    /** The backend side of one connection, as the test plays it. */
    static final class BackendConnection {
        final Socket socket;
        private final InputStream in;
        private final OutputStream out;
        /** Bytes read past the request head, by {@link #closedWithin} or {@link #nothingWithin}. */
        private final ByteArrayOutputStream extra = new ByteArrayOutputStream();

        BackendConnection(Socket socket) throws IOException {
            this.socket = socket;
            socket.setSoTimeout(5_000);
            this.in = socket.getInputStream();
            this.out = socket.getOutputStream();
        }

        String readHead() throws IOException {
            String head = SocketBackend.readHead(in);
            if (head == null) {
                throw new IOException("closed before a request head");
            }
            return head;
        }

        byte[] readExactly(int n) throws IOException {
            return in.readNBytes(n);
        }

        void write(String bytes) throws IOException {
            out.write(bytes.getBytes(ISO_8859_1));
            out.flush();
        }

        /** Whether the proxy closes this connection within {@code millis}; what arrives before is kept. */
        boolean closedWithin(int millis) throws IOException {
            socket.setSoTimeout(millis);
            try {
                byte[] buffer = new byte[4096];
                int n;
                while ((n = in.read(buffer)) >= 0) {
                    extra.write(buffer, 0, n);
                }
                return true;
            } catch (SocketTimeoutException e) {
                return false;
            } catch (IOException reset) {
                return true;
            }
        }

        /** Whether no byte arrives within {@code millis} (the connection may stay open). */
        boolean nothingWithin(int millis) throws IOException {
            socket.setSoTimeout(millis);
            try {
                int b = in.read();
                if (b >= 0) {
                    extra.write(b);
                }
                return b < 0;
            } catch (SocketTimeoutException e) {
                return true;
            }
        }

        String received() {
            return extra.toString(ISO_8859_1);
        }

        private final java.util.concurrent.atomic.AtomicLong written = new java.util.concurrent.atomic.AtomicLong();

        /** Writes {@code total} bytes of the filler stream on another thread, in small writes. */
        Thread writeFillerInBackground(long total) {
            Thread writer = new Thread(() -> {
                try {
                    byte[] piece = new byte[8192];
                    for (long at = 0; at < total; at += piece.length) {
                        for (int i = 0; i < piece.length; i++) {
                            piece[i] = HandDrivenBackend.filler(at + i);
                        }
                        out.write(piece);
                        written.addAndGet(piece.length);
                    }
                } catch (IOException e) {
                    // the reading side's assertions fail instead
                }
            }, "filler-writer");
            writer.setDaemon(true);
            writer.start();
            return writer;
        }

        long written() {
            return written.get();
        }

        /**
         * The bytes written once the writer made no progress for {@code stallMillis} (a write blocked: nothing
         * reads on the way), or all of them when that does not happen within {@code withinMillis}.
         */
        long writtenOnceStalled(int stallMillis, int withinMillis) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(withinMillis);
            long last = -1;
            while (System.nanoTime() < deadline) {
                long now = written.get();
                if (now == last) {
                    return now;
                }
                last = now;
                Thread.sleep(stallMillis);
            }
            return written.get();
        }
    }
}
