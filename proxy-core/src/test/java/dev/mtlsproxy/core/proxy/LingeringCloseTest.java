package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A connection the proxy closes after answering, while the client is still sending its request, must not lose the
 * answer. Closing a socket with unread bytes makes the kernel send a reset instead of a FIN, which throws away what
 * of the response is still in the proxy's send buffer and makes the client's next write fail, which JSSE (like many
 * clients) turns into closing its socket before the response was read. Each scenario here leaves request bytes
 * unread when the proxy is done with the connection; the client must still read the whole answer.
 *
 * <p>Most clients here send the whole request before reading anything, as simple HTTP clients do: an upload far
 * larger than what the socket buffers hold, so that without a lingering close the proxy certainly closes with
 * bytes unread and the client is certainly still writing when the reset comes.
 */
class LingeringCloseTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String OPS = "spiffe://prod.test/ns/ops/sa/admin";
    /** Several times what the kernel buffers between client and proxy can hold, well under the lingering limit. */
    static final long UPLOAD = 32L << 20;

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .identity("ops", OPS)
            .backend("shop", backend.url())
            .route("admin", "/admin", "shop", "ops")
            .route("orders-api", "/", "shop", "orders"));

    @Test
    void aDeniedUploadGets403WhenTheClientReadsOnlyAfterSendingItAll() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /admin/import HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + UPLOAD + "\r\n\r\n");
            sendBody(client.output(), UPLOAD);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(403);
            assertThat(response.bodyText()).isEqualTo("forbidden\n");
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(client.closedWithin(5_000)).as("then the proxy's side closes").isTrue();
        }
        assertThat(fixture.backend().pendingRequests()).isZero();
    }

    @Test
    void aBadlyFramedUploadGets400WhenTheClientReadsOnlyAfterSendingItAll() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // Two different lengths: the decoder refuses the head and never finds where the body ends.
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + UPLOAD
                    + "\r\nContent-Length: 1\r\n\r\n");
            sendBody(client.output(), UPLOAD);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(400);
            assertThat(response.bodyText()).isEqualTo("bad request\n");
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(client.closedWithin(5_000)).isTrue();
        }
    }

    @Test
    void aBackendsEarlyAnswerReachesAClientStillUploading() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /early?status=413 HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + UPLOAD
                    + "\r\n\r\n");
            sendBody(client.output(), UPLOAD);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(413);
            assertThat(response.bodyText()).isEqualTo("answered early\n");
            assertThat(response.header("x-backend")).isEqualTo("test");
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(client.closedWithin(5_000)).as("the request was cut short: the connection ends")
                    .isTrue();
        }
    }

    @Test
    void aBackendsEarlyAnswerDuringADrainReachesAClientStillUploading() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /early?status=413&ms=500 HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + UPLOAD
                    + "\r\n\r\n");
            // The request is at the backend (in flight) before the drain starts, and answered after it did.
            await().atMost(Duration.ofSeconds(5)).until(() -> fixture.backend().openConnections() == 1);
            fixture.proxy().server().stopAccepting();
            CompletableFuture<Boolean> drained = CompletableFuture.supplyAsync(() -> {
                try {
                    return fixture.proxy().server().drain(Duration.ofSeconds(20));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            });
            sendBody(client.output(), UPLOAD);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(413);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(client.closedWithin(5_000)).isTrue();
            assertThat(drained.get(20, TimeUnit.SECONDS)).as("drained once the client closed").isTrue();
        }
    }

    @Test
    void aBackendsEarlyAnswerToAnUnfinishedUploadSaysTheConnectionCloses() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            // A client that reads while it sends: it has the answer with most of its upload unsent, and must not
            // take the connection for one it can send its next request on.
            client.send("POST /early?status=413 HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + UPLOAD
                    + "\r\n\r\n");
            sendBody(client.output(), 64 * 1024);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(413);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(client.closedWithin(5_000)).as("and it does close").isTrue();
        }
    }

    @Test
    void theProxysOwnAnswerToAnUnfinishedUploadSaysTheConnectionCloses() throws Exception {
        fixture.backend().close(); // the upload cannot be forwarded: 502 while most of it is unsent
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + UPLOAD + "\r\n\r\n");
            sendBody(client.output(), 64 * 1024);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(502);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(client.closedWithin(5_000)).isTrue();
        }
    }

    @Test
    void aResponseStillInTheSendBufferReachesASlowReaderWholeWhenARefusedUploadIsLeftUnread() throws Exception {
        long download = 8L << 20;
        long upload = 1L << 20;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("GET /download?bytes=" + download + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            // Pipelined behind it, a refused upload: held by the proxy until the download is written, and most of it
            // still unread in the socket when the 403 closes the connection.
            CompletableFuture<Void> uploaded = CompletableFuture.runAsync(() -> {
                try {
                    client.send("POST /admin/import HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + upload
                            + "\r\n\r\n");
                    sendBody(client.output(), upload);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });

            // A reader slower than the proxy: when the 403 is written, the end of the download is still in the
            // proxy's send buffer, which a reset would discard.
            long received = client.readResponseDiscardingBody(new OutputStream() {
                @Override
                public void write(int b) {
                }

                @Override
                public void write(byte[] b, int off, int len) {
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
                }
            });
            MtlsClient.Response refused = client.readResponse();

            assertThat(received).as("the whole download").isEqualTo(download);
            assertThat(refused.status()).isEqualTo(403);
            assertThat(refused.bodyText()).isEqualTo("forbidden\n");
            uploaded.get(10, TimeUnit.SECONDS);
            assertThat(client.closedWithin(5_000)).isTrue();
        }
    }

    @Test
    void aBodyFoundMalformedWhileForwardedCutsTheBackendOffAtOnceNotWhenTheLingeringEnds() throws Exception {
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n");
            await().atMost(Duration.ofSeconds(5)).until(() -> fixture.backend().openConnections() == 1);

            client.send("zz\r\n"); // not a chunk size: where the body ends is unknown from here on

            assertThat(client.readResponse().status()).isEqualTo(400);
            // The client neither sends nor closes, so the connection lingers for the quiet time; the backend,
            // holding half a request that can never be completed, must not wait for that.
            await().atMost(Duration.ofSeconds(2)).until(() -> fixture.backend().openConnections() == 0);
        }
        assertThat(fixture.backend().pendingRequests()).as("the backend never saw a complete request").isZero();
    }

    @Test
    void aClientThatKeepsSendingAfterItsAnswerIsCutOffOnceTheLingeringByteLimitIsRead() throws Exception {
        AtomicLong sent = new AtomicLong();
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /admin/import HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
            // A client that reads while it sends, and never stops sending: reading its answer does not save the
            // proxy from reading forever, the limit does.
            CompletableFuture<IOException> stopped = CompletableFuture.supplyAsync(() -> {
                byte[] chunk = ("10000\r\n" + "x".repeat(0x10000) + "\r\n").getBytes();
                try {
                    while (sent.get() < 4 * LingeringClose.MAX_DISCARDED_BYTES) {
                        client.output().write(chunk);
                        sent.addAndGet(chunk.length);
                    }
                    return null;
                } catch (IOException e) {
                    return e;
                }
            });

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(403);
            assertThat(stopped.get(30, TimeUnit.SECONDS)).as("the proxy closed while the client was sending")
                    .isNotNull();
            assertThat(sent.get()).as("not before the limit").isGreaterThan(LingeringClose.MAX_DISCARDED_BYTES);
        }
    }

    @Test
    void aClientThatNeitherSendsNorClosesAfterItsAnswerIsClosedAfterTheQuietTime() throws Exception {
        double closedBefore = fixture.proxy().count("mtls.proxy.connections.closed", "listener", "main");
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("POST /admin/import HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + (1 << 20)
                    + "\r\n\r\n");
            // Taken before the proxy can have read the client's last byte, which starts the quiet time; taken
            // after the answer, it would make the time the client takes to read the answer (long on a busy
            // machine) count against the quiet time.
            long lastSent = System.nanoTime();
            sendBody(client.output(), 64 * 1024);

            MtlsClient.Response response = client.readResponse();

            assertThat(response.status()).isEqualTo(403);
            assertThat(client.closedWithin(5_000)).as("the proxy's sending side is closed").isTrue();
            await().atMost(LingeringClose.QUIET.plusSeconds(5))
                    .until(() -> fixture.proxy().count("mtls.proxy.connections.closed", "listener", "main")
                            > closedBefore);
            assertThat(Duration.ofNanos(System.nanoTime() - lastSent))
                    .as("the client had the quiet time to send or close")
                    .isGreaterThanOrEqualTo(LingeringClose.QUIET);
        }
    }

    @Test
    void aClientThatAskedForCloseAndSentMoreStillGetsTheWholeResponse() throws Exception {
        // The proxy stops reading while a response is pending, so what the client sends meanwhile (here a pipelined
        // request, against RFC 9112 9.6 but seen in the wild) is unread when the response ends. Closing then makes
        // the kernel send a reset and drop what of the response is still in the send buffer: megabytes, since the
        // response is larger than the socket buffers hold and the client only reads once it has sent everything.
        int size = 8 << 20;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            client.send("GET /download?bytes=" + size + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            Thread.sleep(300);
            client.send("POST /after HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + (256 << 10) + "\r\n\r\n");
            sendBody(client.output(), 256 << 10);

            long received = client.readResponseDiscardingBody(OutputStream.nullOutputStream());

            assertThat(received).isEqualTo(size);
            assertThat(client.closedWithin(5_000)).isTrue();
        }
        assertThat(fixture.backend().nextRequest(300, TimeUnit.MILLISECONDS).uri()).startsWith("/download");
        assertThat(fixture.backend().pendingRequests()).as("nothing after the close is forwarded").isZero();
    }

    private static void sendBody(OutputStream out, long length) throws IOException {
        byte[] chunk = new byte[64 * 1024];
        for (long left = length; left > 0; left -= chunk.length) {
            out.write(chunk, 0, (int) Math.min(chunk.length, left));
        }
        out.flush();
    }
}
