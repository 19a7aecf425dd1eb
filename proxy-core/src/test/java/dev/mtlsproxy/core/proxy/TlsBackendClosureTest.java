package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A TLS backend whose response body is delimited by the end of the connection (no Content-Length, not chunked).
 * Over TLS that end is the backend's close_notify (RFC 9112 9.8): a connection that just stops, without one, is a
 * backend that died or a truncation by someone on the path, and the part received must not reach the client as the
 * whole body.
 */
class TlsBackendClosureTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String CLOSE_DELIMITED_HEAD = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";

    @TempDir
    Path dir;
    TestPki pki;
    SocketBackend backend;
    RunningProxy proxy;
    @RegisterExtension
    final LogCapture log = LogCapture.of(ForwardingHandler.class);

    @BeforeEach
    void start() {
        pki = TestPki.create(dir);
    }

    @AfterEach
    void stop() throws IOException {
        if (proxy != null) {
            proxy.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    @Test
    void aCloseDelimitedBodyEndedByTheBackendsCloseNotifyIsWhole() throws Exception {
        try (MtlsClient client = clientOf(tls -> {
            respond(tls, CLOSE_DELIMITED_HEAD + "hello");
            tls.close(); // close_notify, then FIN
        })) {
            MtlsClient.Response response = client.get("/orders");
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("hello");
        }
    }

    @Test
    void aCloseDelimitedBodyCutWithoutCloseNotifyReachesTheClientAsACut() throws Exception {
        try (MtlsClient client = clientOf(tls -> {
            respond(tls, CLOSE_DELIMITED_HEAD + "hello");
            tls.getUnderlyingSocket().close(); // FIN with no close_notify: the body may have been longer
        })) {
            client.send("GET /orders HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Throwable cut = catchThrowable(client::readResponse);
            assertThat(cut).as("a truncated response, never a complete one").isInstanceOf(IOException.class);
        }
        assertThat(log.await("backend=shop", "after=response_started")).contains("close_notify");
    }

    /**
     * A backend that ends its TLS (close_notify) on a kept-alive connection while it idles in the pool, and leaves the
     * TCP connection open, as a server waiting for the peer's close_notify does: it will answer nothing more on it. A
     * POST sent there would get a 502 (it is never sent twice), so the pool lets the connection go at once, as it
     * does one the backend closed.
     */
    @Test
    void aPooledConnectionWhoseBackendEndedItsTlsIsNotReused() throws Exception {
        CountDownLatch firstClosedByTheProxy = new CountDownLatch(1);
        AtomicInteger connections = new AtomicInteger();
        try (MtlsClient client = clientOf(tls -> {
            if (connections.incrementAndGet() == 1) {
                respond(tls, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
                tls.socket().shutdownOutput(); // close_notify; the TCP connection stays open
                InputStream raw = tls.underlying().getInputStream();
                while (raw.read(new byte[1024]) >= 0) {
                    // the proxy's own close_notify, if any, then the end
                }
                firstClosedByTheProxy.countDown();
                return;
            }
            String head = SocketBackend.readHead(tls.socket().getInputStream());
            assertThat(head).startsWith("POST ");
            tls.socket().getInputStream().readNBytes(4);
            respond(tls, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", false);
            tls.close();
        })) {
            assertThat(client.get("/orders").bodyText()).isEqualTo("first");
            assertThat(firstClosedByTheProxy.await(5, TimeUnit.SECONDS))
                    .as("the proxy closed the connection the backend ended").isTrue();

            client.send("POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody");
            MtlsClient.Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("second");
        }
    }

    /** Serves one connection over TLS; the handler decides how it ends. */
    interface TlsHandler {
        void serve(TlsConnection tls) throws IOException;
    }

    /** The TLS layer of a backend connection and the TCP connection beneath it, which it does not close. */
    record TlsConnection(SSLSocket socket, Socket underlying) {
        Socket getUnderlyingSocket() {
            return underlying;
        }

        void close() throws IOException {
            socket.close();
            underlying.close();
        }
    }

    private static void respond(TlsConnection tls, String response) throws IOException {
        respond(tls, response, true);
    }

    /** Writes {@code response}, after reading a request head when {@code readHead}. */
    private static void respond(TlsConnection tls, String response, boolean readHead) throws IOException {
        if (readHead && SocketBackend.readHead(tls.socket().getInputStream()) == null) {
            throw new IOException("connection closed before a request head");
        }
        OutputStream out = tls.socket().getOutputStream();
        out.write(response.getBytes(US_ASCII));
        out.flush();
    }

    private MtlsClient clientOf(TlsHandler handler) throws Exception {
        SSLContext context = pki.backendServer("closing", b -> b.addSanIpAddress("127.0.0.1")).serverContext();
        backend = SocketBackend.start("tls-closure-backend", tcp -> {
            SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(tcp, null, tcp.getPort(), false);
            tls.setUseClientMode(false);
            tls.startHandshake();
            handler.serve(new TlsConnection(tls, tcp));
        });
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(List.of(URI.create("https://" + backend.authority())),
                        BackendTlsConfig.trusting(pki.caPem())))
                .route("all", "/", "shop", "orders")
                .start();
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }
}
