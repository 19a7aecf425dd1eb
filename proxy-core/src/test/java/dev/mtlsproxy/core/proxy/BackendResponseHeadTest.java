package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
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
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * How the proxy reads a backend's response head: which responses have a body (a HEAD's does not, whatever length
 * it announces), and what reaches the client (every field, spelled as the backend spelled it).
 */
class BackendResponseHeadTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    Path dir;
    TestPki pki;
    KeepAliveBackend backend;
    RunningProxy proxy;
    MtlsClient client;

    @BeforeEach
    void start() throws Exception {
        pki = TestPki.create(dir);
        backend = KeepAliveBackend.start();
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(List.of(URI.create(backend.url())), null))
                .route("all", "/", "shop", "orders")
                .start();
        client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }

    @AfterEach
    void stop() throws IOException {
        client.close();
        proxy.close();
        backend.close();
    }

    @Test
    void aHeadResponseAnnouncingALengthHasNoBodyAndBothConnectionsCarryOn() throws Exception {
        client.send("HEAD /report HTTP/1.1\r\nHost: localhost\r\n\r\n");
        MtlsClient.Response head = client.readHeadResponse();
        assertThat(head.status()).isEqualTo(200);
        assertThat(head.header("content-length")).isEqualTo("1000");

        // Had the proxy waited for 1000 bytes of body, this GET's response would be taken for them, or time out.
        MtlsClient.Response get = client.get("/report");
        assertThat(get.status()).isEqualTo(200);
        assertThat(get.bodyText()).isEqualTo("hello");
        assertThat(backend.connections()).as("the backend connection was reused after the HEAD").isEqualTo(1);
    }

    @Test
    void responseFieldNamesReachTheClientSpelledAsTheBackendWroteThem() throws Exception {
        client.send("GET /report HTTP/1.1\r\nHost: localhost\r\n\r\n");
        String head = readRawHead(client.input());

        assertThat(head).startsWith("HTTP/1.1 200 OK\r\n")
                .contains("\r\nContent-Type: text/plain\r\n")
                .contains("\r\ncache-control: no-store\r\n")
                .contains("\r\nETag: \"v1\"\r\n")
                .contains("\r\nX-Trace-Id: abc\r\n")
                .contains("\r\nContent-Length: 5\r\n");
    }

    @Test
    void hopByHopFieldsAndTheOnesConnectionNamesStopAtTheProxyWhileTheRestKeepTheirOrder() throws Exception {
        client.send("GET /report HTTP/1.1\r\nHost: localhost\r\n\r\n");
        String head = readRawHead(client.input());

        assertThat(head).doesNotContainIgnoringCase("X-Hop").doesNotContainIgnoringCase("Keep-Alive")
                .doesNotContainIgnoringCase("Connection:");
        assertThat(head.indexOf("\r\nSet-Cookie: a=1\r\n")).as("same-name fields in the backend's order")
                .isPositive().isLessThan(head.indexOf("\r\nSet-Cookie: b=2\r\n"));
    }

    @Test
    void anEarlyHintsResponseIsDroppedAndTheFinalResponseArrivingInALaterReadIsRelayed() throws Exception {
        MtlsClient.Response response = client.get("/hints");

        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyText()).isEqualTo("hello");
        assertThat(response.header("link")).as("the 103's fields stay with the 103").isNull();
    }

    @Test
    void aMalformedResponseOnAReusedConnectionIsA502AndTheRequestIsNotSentAgain() throws Exception {
        assertThat(client.get("/report").status()).as("leaves a pooled backend connection").isEqualTo(200);

        assertThat(client.get("/malformed").status()).isEqualTo(502);
        assertThat(backend.requests("/malformed")).as("the backend had the request once, and answered it")
                .isEqualTo(1);
    }

    @Test
    void aConnectionWithBytesPastTheEndOfTheResponseIsNotReused() throws Exception {
        // "hello world" under Content-Length: 5. Pooled, the connection would hold " world" unread, and the next
        // request's response would be read as " worldHTTP/1.1 200 OK...": a 502 for whoever came next.
        MtlsClient.Response overlong = client.get("/overlong");
        assertThat(overlong.status()).isEqualTo(200);
        assertThat(overlong.bodyText()).isEqualTo("hello");

        MtlsClient.Response next = client.get("/report");
        assertThat(next.status()).isEqualTo(200);
        assertThat(next.bodyText()).isEqualTo("hello");
        assertThat(backend.connections()).as("the connection with bytes left over was closed").isEqualTo(2);
    }

    /**
     * A request's Host stays even when Connection names it (it is what the policy judged); a response's means nothing
     * to the proxy, so naming it makes it hop-by-hop like any other field (found by HostileBackendResponseFuzzTest).
     */
    @Test
    void aHostFieldTheResponseNamesInConnectionStopsAtTheProxy() throws Exception {
        client.send("GET /named-host HTTP/1.1\r\nHost: localhost\r\n\r\n");
        String head = readRawHead(client.input());

        assertThat(head).startsWith("HTTP/1.1 200 OK\r\n").doesNotContain("backend.internal")
                .doesNotContainIgnoringCase("\r\nHost:").contains("\r\nContent-Length: 5\r\n");
    }

    /**
     * RFC 9112 6.1: no Transfer-Encoding in a response to an HTTP/1.0 request, even one without a body, where the
     * backend's field was relayed as it was (found by HostileBackendResponseFuzzTest).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"HEAD /chunked, 200", "GET /not-modified, 304"})
    void aBodilessResponseToAnHttp10ClientCarriesNoTransferEncoding(String request, int status) throws Exception {
        client.send(request + " HTTP/1.0\r\nHost: localhost\r\n\r\n");
        String head = readRawHead(client.input());

        assertThat(head).startsWith("HTTP/1.1 " + status + " ").doesNotContainIgnoringCase("Transfer-Encoding");
        assertThat(client.closedWithin(5_000)).as("an HTTP/1.0 client's connection closes after the response")
                .isTrue();
    }

    /**
     * RFC 9110 15.3.6 allows a 205 no content. A backend that sends some anyway has it read by its framing (the
     * connection stays usable), and the client gets the 205 with {@code Content-Length: 0} and no body: Netty's
     * response encoder sets that length and drops the body (README, "Backend responses").
     */
    @Test
    void aResetContentResponseReachesTheClientWithALengthOfZeroAndWithoutTheBodyTheBackendSent() throws Exception {
        MtlsClient.Response reset = client.get("/reset");
        assertThat(reset.status()).isEqualTo(205);
        assertThat(reset.header("content-length")).isEqualTo("0");

        // Had "hello" reached the client after the 205, this response would be read from it.
        MtlsClient.Response next = client.get("/report");
        assertThat(next.status()).isEqualTo(200);
        assertThat(next.bodyText()).isEqualTo("hello");
        assertThat(backend.connections()).as("the backend connection was reused after the 205").isEqualTo(1);
    }

    private static String readRawHead(InputStream in) throws IOException {
        String head = SocketBackend.readHead(in);
        if (head == null) {
            throw new IOException("connection closed before a response head");
        }
        return head;
    }

    /**
     * A plain socket backend that keeps each connection open and answers every request on it: to HEAD, the head
     * its GET would have (Content-Length 1000) and no body, or to HEAD /chunked a chunked head; to /not-modified, a
     * 304 with Transfer-Encoding: chunked; to /named-host, a Host field its Connection names; to /hints, a 103 and,
     * in a later write, the 5-byte response; to /malformed, a response with two lengths; to /overlong, 11 bytes of
     * body under a length of 5; to /reset, a 205 with a 5-byte body; to anything else, a 5-byte body.
     */
    static final class KeepAliveBackend implements AutoCloseable {
        static final String HEAD_RESPONSE =
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
        static final String GET_RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncache-control: no-store\r\n"
                + "Set-Cookie: a=1\r\nConnection: X-Hop\r\nETag: \"v1\"\r\nX-Hop: backend-only\r\n"
                + "Keep-Alive: timeout=5\r\nX-Trace-Id: abc\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello";

        static final String CHUNKED_HEAD_RESPONSE = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        static final String NOT_MODIFIED_CHUNKED =
                "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nTransfer-Encoding: chunked\r\n\r\n";
        static final String NAMED_HOST_RESPONSE = "HTTP/1.1 200 OK\r\nConnection: host, Content-Length\r\n"
                + "Host: backend.internal\r\nContent-Length: 5\r\n\r\nhello";
        static final String EARLY_HINTS = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
        static final String OVERLONG_RESPONSE = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world";
        static final String RESET_WITH_BODY = "HTTP/1.1 205 Reset Content\r\nContent-Length: 5\r\n\r\nhello";
        static final String MALFORMED_RESPONSE =
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";

        private final Map<String, AtomicInteger> requests = new ConcurrentHashMap<>();
        private final SocketBackend server;

        private KeepAliveBackend() throws IOException {
            server = SocketBackend.start("keep-alive-backend", this::serve);
        }

        static KeepAliveBackend start() throws IOException {
            return new KeepAliveBackend();
        }

        String url() {
            return server.url();
        }

        int connections() {
            return server.connectionsAccepted();
        }

        int requests(String path) {
            AtomicInteger count = requests.get(path);
            return count == null ? 0 : count.get();
        }

        private void serve(Socket connection) throws IOException, InterruptedException {
            InputStream in = connection.getInputStream();
            OutputStream out = connection.getOutputStream();
            String head;
            while ((head = SocketBackend.readHead(in)) != null) {
                String path = head.split(" ", 3)[1];
                requests.computeIfAbsent(path, p -> new AtomicInteger()).incrementAndGet();
                if (path.equals("/chunked") && head.startsWith("HEAD ")) {
                    write(out, CHUNKED_HEAD_RESPONSE);
                } else if (path.equals("/named-host")) {
                    write(out, NAMED_HOST_RESPONSE);
                } else if (path.equals("/not-modified")) {
                    write(out, NOT_MODIFIED_CHUNKED);
                } else if (head.startsWith("HEAD ")) {
                    write(out, HEAD_RESPONSE);
                } else if (path.equals("/hints")) {
                    write(out, EARLY_HINTS);
                    Thread.sleep(200); // the final response comes in a read of its own
                    write(out, GET_RESPONSE);
                } else if (path.equals("/overlong")) {
                    write(out, OVERLONG_RESPONSE);
                } else if (path.equals("/reset")) {
                    write(out, RESET_WITH_BODY);
                } else if (path.equals("/malformed")) {
                    write(out, MALFORMED_RESPONSE);
                } else {
                    write(out, GET_RESPONSE);
                }
            }
        }

        private static void write(OutputStream out, String response) throws IOException {
            out.write(response.getBytes(US_ASCII));
            out.flush();
        }

        @Override
        public void close() throws IOException {
            server.close();
        }
    }
}
