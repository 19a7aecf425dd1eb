package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * Whether a backend connection is reused after each way a response can end, and whether the next request on it is
 * answered with its own response, never with bytes left over from the previous one. The backend numbers its
 * connections and says in every answer which one it came on ({@code x-connection}) and for which target
 * ({@code x-target}); it reads each request's body by its Content-Length.
 */
class BackendConnectionReuseTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String OTHER = "spiffe://prod.test/ns/shop/sa/other";

    @TempDir
    static Path dir;
    static TestPki pki;
    static SocketBackend backend;
    static RunningProxy proxy;
    static final AtomicInteger connections = new AtomicInteger();
    /** Targets as the backend received them, with the bodies' lengths: "POST /x 5". */
    static final BlockingQueue<String> received = new LinkedBlockingQueue<>();
    /** Targets whose head has arrived, before their bodies are read. */
    static final BlockingQueue<String> arrived = new LinkedBlockingQueue<>();

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = SocketBackend.start("scripted-backend", BackendConnectionReuseTest::serve);
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .identity("other", OTHER)
                .backend("shop", BackendConfig.of(List.of(URI.create(backend.url())), null))
                .route("denied", "/denied", "shop", "other")
                .route("all", "/", "shop", "orders")
                .start();
    }

    @AfterAll
    static void stop() throws IOException {
        proxy.close();
        backend.close();
    }

    /**
     * Answers by path: {@code /204}, {@code /304}: that status with {@code Content-Length: 5} and no body;
     * {@code /interim}: 100 and 103 first; {@code /close-delimited}: a body ended by closing; {@code /conn-close}:
     * {@code Connection: close}, then closes; {@code /early}: 401 on the head, then reads the body; {@code /slow}:
     * the answer after 300 ms; anything else: 200 with the target as body (none to HEAD, but for
     * {@code /head-with-body}).
     */
    private static void serve(java.net.Socket connection) throws IOException, InterruptedException {
        int number = connections.incrementAndGet();
        InputStream in = connection.getInputStream();
        OutputStream out = connection.getOutputStream();
        String head;
        while ((head = SocketBackend.readHead(in)) != null) {
            String[] line = head.substring(0, head.indexOf('\r')).split(" ");
            String target = line[1];
            arrived.add(target);
            long length = contentLength(head);
            String fields = "x-connection: " + number + "\r\nx-target: " + target + "\r\n";
            if (target.equals("/early")) {
                write(out, "HTTP/1.1 401 Unauthorized\r\n" + fields + "Content-Length: 4\r\n\r\nnope");
            }
            for (long i = 0; i < length; i++) {
                if (in.read() < 0) {
                    received.add(line[0] + " " + target + " cut at " + i);
                    return;
                }
            }
            received.add(line[0] + " " + target + " " + length);
            switch (target) {
                case "/204" -> write(out, "HTTP/1.1 204 No Content\r\n" + fields + "Content-Length: 5\r\n\r\n");
                case "/304" -> write(out, "HTTP/1.1 304 Not Modified\r\n" + fields + "Content-Length: 5\r\n\r\n");
                case "/interim" -> write(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                        + "Link: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n" + fields
                        + "Content-Length: 8\r\n\r\n/interim");
                case "/close-delimited" -> {
                    write(out, "HTTP/1.1 200 OK\r\n" + fields + "\r\nuntil the close");
                    return;
                }
                case "/conn-close" -> {
                    write(out, "HTTP/1.1 200 OK\r\n" + fields + "Connection: close\r\nContent-Length: 11\r\n\r\n"
                            + "/conn-close");
                    return;
                }
                case "/early" -> {
                    // answered above
                }
                case "/slow" -> {
                    Thread.sleep(300);
                    write(out, "HTTP/1.1 200 OK\r\n" + fields + "Content-Length: 5\r\n\r\n/slow");
                }
                default -> write(out, "HTTP/1.1 200 OK\r\n" + fields + "Content-Length: " + target.length()
                        + "\r\n\r\n" + (line[0].equals("HEAD") && !target.equals("/head-with-body") ? "" : target));
            }
        }
    }

    private static long contentLength(String head) {
        for (String field : head.split("\r\n")) {
            if (field.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
                return Long.parseLong(field.substring(15).trim());
            }
        }
        return 0;
    }

    private static void write(OutputStream out, String response) throws IOException {
        out.write(response.getBytes(US_ASCII));
        out.flush();
    }

    private static MtlsClient client() throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }

    /** The next request the backend received, as "METHOD target length". */
    private static String nextReceived() throws InterruptedException {
        return received.poll(5, TimeUnit.SECONDS);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            a 204 announcing a length        | GET /204      | 204 | true
            a 304 announcing a length        | GET /304      | 304 | true
            a HEAD answered with a length    | HEAD /head    | 200 | true
            a HEAD answered with a body too  | HEAD /head-with-body | 200 | false
            100 and 103 before the answer    | GET /interim  | 200 | true
            Connection: close from backend   | GET /conn-close | 200 | false
            a body ended by the close        | GET /close-delimited | 200 | false
            """)
    void theNextRequestGetsItsOwnAnswerOnTheSameConnectionOnlyWhenTheLastOneEndedCleanly(String what,
            String request, int status, boolean reused) throws Exception {
        received.clear();
        try (MtlsClient client = client()) {
            client.send(request + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Response first = request.startsWith("HEAD") ? client.readHeadResponse() : client.readResponse();
            assertThat(first.status()).isEqualTo(status);
            assertThat(first.header("connection")).as("the client connection stays open").isNotEqualTo("close");
            if (status == 200 && !request.startsWith("HEAD")) {
                assertThat(first.bodyText()).endsWith(request.equals("GET /close-delimited") ? "until the close"
                        : request.substring(request.indexOf(' ') + 1));
            }
            Response next = client.get("/next");
            assertThat(next.status()).isEqualTo(200);
            assertThat(next.bodyText()).as("the answer to the next request, and nothing else").isEqualTo("/next");
            assertThat(next.header("x-connection").equals(first.header("x-connection")))
                    .as("the backend connection was reused").isEqualTo(reused);
            assertThat(client.get("/third").bodyText()).isEqualTo("/third");
        }
        assertThat(nextReceived()).startsWith(request);
        assertThat(nextReceived()).isEqualTo("GET /next 0");
    }

    @Test
    void aConnectionAnsweredBeforeItsUploadEndedIsNotReusedAndTheNextClientGetsItsOwnAnswer() throws Exception {
        received.clear();
        String early;
        try (MtlsClient client = client()) {
            client.send("POST /early HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
                    + "x".repeat(10));
            Response answer = client.readResponse();
            assertThat(answer.status()).isEqualTo(401);
            assertThat(answer.header("connection")).isEqualTo("close");
            early = answer.header("x-connection");
        }
        try (MtlsClient client = client()) {
            Response next = client.get("/after-early");
            assertThat(next.bodyText()).isEqualTo("/after-early");
            assertThat(next.header("x-connection")).as("a new backend connection").isNotEqualTo(early);
        }
        assertThat(nextReceived()).startsWith("POST /early cut at ");
        assertThat(nextReceived()).isEqualTo("GET /after-early 0");
    }

    @ParameterizedTest(name = "the client closes {0}")
    @CsvSource(delimiter = '|', textBlock = """
            in the middle of its request body | POST /upload HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: 1000\\r\\n\\r\\nabc
            while its answer is on its way    | GET /slow HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n
            with requests pipelined behind    | GET /slow HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\nGET /b HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\nGET /c HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n
            """)
    void aBackendConnectionLeftByAClientThatWentAwayIsNeverReused(String when, String raw) throws Exception {
        received.clear();
        arrived.clear();
        try (MtlsClient client = client()) {
            client.send(raw.replace("\\r\\n", "\r\n"));
            assertThat(arrived.poll(5, TimeUnit.SECONDS)).as("the request reached the backend").isNotNull();
        }
        if (raw.startsWith("POST")) {
            assertThat(nextReceived()).as("the backend connection was closed with the body unfinished")
                    .isEqualTo("POST /upload cut at 3");
        }
        // Were the connection pooled with the rest of an exchange on it, the next requests would get its bytes.
        try (MtlsClient client = client()) {
            for (String path : List.of("/one", "/two")) {
                Response next = client.get(path);
                assertThat(next.status()).isEqualTo(200);
                assertThat(next.bodyText()).as("its own answer, nothing left over").isEqualTo(path);
            }
        }
        assertThat(arrived).as("nothing pipelined behind was forwarded").containsExactly("/one", "/two");
    }

    /**
     * An HTTP/1.0 client keeps its connection only when the answer says {@code Connection: keep-alive} (RFC 9112
     * appendix C.2.2): without it, one such as ApacheBench's {@code ab -k} waits for a close that never comes. nginx
     * says it on every keep-alive answer.
     */
    @Test
    void anHttp10ClientAskingForKeepAliveIsToldItIsKeptAndCanUseIt() throws Exception {
        received.clear();
        try (MtlsClient client = client()) {
            for (String path : List.of("/first", "/second")) {
                client.send("GET " + path + " HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
                Response answer = client.readResponse();
                assertThat(answer.bodyText()).isEqualTo(path);
                assertThat(answer.header("connection")).isEqualToIgnoringCase("keep-alive");
            }
        }
    }

    @Test
    void aDeniedRequestExpectingContinueGets403WithoutItsBodyBeingAskedForOrForwarded() throws Exception {
        received.clear();
        try (MtlsClient client = client()) {
            client.send("POST /denied HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                    + "Content-Length: 5\r\n\r\n");
            Response answer = client.readResponse();
            assertThat(answer.status()).as("no 100 first").isEqualTo(403);
            assertThat(answer.header("connection")).as("its unread body ends the connection").isEqualTo("close");
            assertThat(client.closedWithin(2_000)).isTrue();
        }
        assertThat(received.poll(500, TimeUnit.MILLISECONDS)).as("nothing reached the backend").isNull();
    }

    @Test
    void anAllowedRequestExpectingContinueGetsOne100AndTheBackendsIsDropped() throws Exception {
        received.clear();
        try (MtlsClient client = client()) {
            client.send("POST /interim HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                    + "Content-Length: 5\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(100);
            client.send("hello");
            Response answer = client.readResponse();
            assertThat(answer.status()).as("the backend's own 100 and 103 are not relayed").isEqualTo(200);
            assertThat(answer.bodyText()).isEqualTo("/interim");
            assertThat(client.get("/next").bodyText()).isEqualTo("/next");
        }
        assertThat(nextReceived()).isEqualTo("POST /interim 5");
    }
}
