package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Shutdown drain: idle keep-alive connections close at once, a request in flight finishes, then nothing is left. */
class GracefulDrainTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .backend("shop", backend.url())
            .route("orders-api", "/", "shop", "orders"));

    @Test
    void aSlowRequestCompletesWhileIdleKeepAlivesCloseAndNewConnectionsAreRefused() throws Exception {
        var address = fixture.proxy().address();
        CompletableFuture<Boolean> drained;
        try (MtlsClient idle = fixture.connect(ORDERS); MtlsClient busy = fixture.connect(ORDERS)) {
            assertThat(idle.get("/hello").status()).isEqualTo(200);
            busy.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            // The request is at the backend (in flight) before the drain starts.
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();

            fixture.proxy().server().stopAccepting();
            drained = CompletableFuture.supplyAsync(() -> {
                try {
                    return fixture.proxy().server().drain(Duration.ofSeconds(10));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            });

            assertThat(idle.closedWithin(1_000)).as("idle keep-alive closed at once").isTrue();
            MtlsClient.Response slow = busy.readResponse();
            assertThat(slow.status()).isEqualTo(200);
            assertThat(slow.bodyText()).isEqualTo("slow hello\n");
            assertThat(slow.header("connection")).isEqualTo("close");
            assertThat(busy.closedWithin(1_000)).isTrue();
        }
        // The client closes, as one told Connection: close does; the proxy's side lingers until then.
        assertThat(drained.get(10, TimeUnit.SECONDS)).as("drained before the deadline").isTrue();
        assertThat(fixture.proxy().server().openConnections()).isZero();
        assertThat(catchThrowable(() -> MtlsClient.connect(address, fixture.pki().root(),
                fixture.pki().client(ORDERS))))
                .as("no longer accepting").isNotNull();
    }

    @Test
    void closingTwiceIsHarmless() {
        fixture.proxy().server().close();

        fixture.proxy().server().close(); // and the fixture closes once more
    }

    @Test
    void requestsStillInFlightAtTheDeadlineAreCut() throws Exception {
        try (MtlsClient busy = fixture.connect(ORDERS)) {
            busy.send("GET /hang HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();
            fixture.proxy().server().stopAccepting();

            long started = System.nanoTime();
            boolean drained = fixture.proxy().server().drain(Duration.ofMillis(300));

            assertThat(drained).isFalse();
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(5));
            assertThat(busy.closedWithin(2_000)).isTrue();
        }
    }

    /**
     * The client pipelines an upload behind a download it reads slowly, and the drain closes the connection after
     * the download with the upload still unread in the socket. The proxy holds none of it: its request ended in a
     * read of its own, before the backend connection was up, which leaves no read pending while the download is
     * in flight. (Whether the proxy had read and held the head of the upload used to depend on whether the request
     * shared a read with the end of the handshake; when it had not, the drain closed without lingering, the kernel
     * reset the connection, and the download lost its end.)
     */
    @Test
    void aResponseInFlightReachesASlowReaderWholeWhenPipelinedBytesAreLeftUnread() throws Exception {
        long total = 8L << 20;
        MtlsClient client = fixture.connect(ORDERS);
        try {
            // The handshake is over on the proxy's side before the request is sent: the request comes in a read of
            // its own, not in the one that finished the handshake (whose read requests would still be pending).
            await().atMost(Duration.ofSeconds(5))
                    .until(() -> fixture.proxy().count("mtls.proxy.tls.handshakes", "result", "success") == 1);
            client.send("GET /download?bytes=" + total + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();
            // Far more than the socket buffers hold, so the client is still writing when the drain closes, and well
            // under the lingering limit, so that limit plays no part.
            long upload = 32L << 20;
            Thread uploader = new Thread(() -> {
                try {
                    client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + upload
                            + "\r\n\r\n");
                    byte[] chunk = new byte[64 * 1024];
                    for (long left = upload; left > 0; left -= chunk.length) {
                        client.output().write(chunk);
                    }
                } catch (IOException expected) {
                    // the proxy closes the connection without reading the upload
                }
            }, "pipelining-uploader");
            uploader.setDaemon(true);
            uploader.start();
            fixture.proxy().server().stopAccepting();
            CompletableFuture<Boolean> drained = CompletableFuture.supplyAsync(() -> {
                try {
                    return fixture.proxy().server().drain(Duration.ofSeconds(20));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            });

            // A reader slower than the proxy: when the last part is handed to the socket, some of the response is
            // still in the proxy's send buffer.
            long received = client.readResponseDiscardingBody(new OutputStream() {
                @Override
                public void write(int b) {
                }

                @Override
                public void write(byte[] b, int off, int len) {
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
                }
            });

            assertThat(received).as("the whole download").isEqualTo(total);
            assertThat(client.closedWithin(5_000)).as("then the proxy's side closes").isTrue();
            client.close();
            assertThat(drained.get(20, TimeUnit.SECONDS)).as("closed once the client closed").isTrue();
        } finally {
            client.close();
        }
    }
}
