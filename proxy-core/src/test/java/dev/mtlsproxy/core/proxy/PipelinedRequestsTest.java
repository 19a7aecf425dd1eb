package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.core.testing.BufferLeaks;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestBackend.IntegrityBody;
import io.netty.util.ResourceLeakDetector;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A client that pipelines: many requests in one write, of every kind the proxy answers differently (forwarded with
 * and without bodies, HEAD, refused by the policy, routed nowhere). Each gets its own answer, in order and whole; and
 * a client that sends requests without reading the answers is answered only as fast as it reads, as nginx does: the
 * next request is taken up once the previous answer is on its way, not queued in the proxy's memory behind it.
 */
class PipelinedRequestsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String OTHER = "spiffe://prod.test/ns/shop/sa/other";

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    private MtlsClient clientOf(String backendUrl) throws Exception {
        fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .identity("other", OTHER)
                .backend("shop", BackendConfig.of(List.of(URI.create(backendUrl)), null))
                .route("denied", "/denied", "shop", "other")
                .route("all", IntegrityBody.PATH, "shop", "orders")
                .route("plain", "/p/", "shop", "orders"));
        return fixture.connect(ORDERS);
    }

    /** One request of the batch, and what its answer must be. */
    record Planned(int id, String method, long requestBody, long responseBody, boolean chunked, int status) {

        String raw() {
            String path = status == 403 ? "/denied/" + id : status == 404 ? "/nowhere/" + id
                    : IntegrityBody.PATH + id + "?bytes=" + responseBody + "&pattern=" + id
                    + (chunked ? "&chunked=1" : "");
            StringBuilder b = new StringBuilder(method).append(' ').append(path).append(" HTTP/1.1\r\n")
                    .append("Host: localhost\r\n").append(IntegrityBody.REQUEST_ID).append(": ").append(id)
                    .append("\r\n");
            if (requestBody > 0) {
                b.append("Content-Length: ").append(requestBody).append("\r\n");
            }
            b.append("\r\n");
            for (long i = 0; i < requestBody; i++) {
                b.append((char) (IntegrityBody.at(id + 100, i) & 0xff));
            }
            return b.toString();
        }
    }

    @Test
    void aHundredAndFiftyPipelinedRequestsOfMixedKindsInOneWriteAreAnsweredInOrderAndWhole() throws Exception {
        Random random = new Random(20261122);
        List<Planned> batch = new ArrayList<>();
        for (int id = 0; id < 150; id++) {
            int kind = random.nextInt(10);
            batch.add(switch (kind) {
                case 0 -> new Planned(id, "GET", 0, 0, false, 403); // refused: bodiless, so keep-alive
                case 1 -> new Planned(id, "GET", 0, 0, false, 404);
                case 2 -> new Planned(id, "HEAD", 0, random.nextInt(50_000), random.nextBoolean(), 200);
                case 3, 4 -> new Planned(id, "POST", 1 + random.nextInt(8_000), random.nextInt(20_000),
                        random.nextBoolean(), 200);
                default -> new Planned(id, "GET", 0, random.nextInt(70_000), random.nextBoolean(), 200);
            });
        }
        StringBuilder all = new StringBuilder();
        batch.forEach(p -> all.append(p.raw()));
        TestBackend backend = fixture.backend();

        try (LogCapture leaks = LogCapture.of(ResourceLeakDetector.class);
                MtlsClient client = clientOf(backend.url())) {
            client.send(all.toString());
            for (Planned p : batch) {
                Response response = p.method().equals("HEAD") ? client.readHeadResponse() : client.readResponse();
                String which = "answer to request " + p.id() + " (" + p + ")";
                assertThat(response.status()).as(which).isEqualTo(p.status());
                if (p.status() != 200) {
                    continue;
                }
                assertThat(response.header(IntegrityBody.REQUEST_ID)).as(which).isEqualTo(String.valueOf(p.id()));
                assertThat(response.header("x-seen-length")).as(which).isEqualTo(String.valueOf(p.requestBody()));
                if (p.requestBody() > 0) {
                    assertThat(response.header("x-seen-sha256")).as(which).isEqualTo(sha256(p));
                }
                byte[] body = response.body();
                assertThat(body.length).as(which).isEqualTo(p.method().equals("HEAD") ? 0 : p.responseBody());
                for (int i = 0; i < body.length; i++) {
                    if (body[i] != IntegrityBody.at(p.id(), i)) {
                        throw new AssertionError(which + ": byte " + i + " is not this answer's");
                    }
                }
            }
            assertThat(client.get("/nowhere/after").status()).as("the connection is still in step").isEqualTo(404);
            BufferLeaks.assertNoneReported(leaks, "buffers leaked relaying a pipelined batch");
        }
        long forwarded = batch.stream().filter(p -> p.status() == 200).count();
        for (long i = 0; i < forwarded; i++) {
            assertThat(backend.nextRequest(5, TimeUnit.SECONDS)).isNotNull();
        }
        assertThat(backend.pendingRequests()).as("nothing refused reached the backend").isZero();
    }

    private static String sha256(Planned p) throws Exception {
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        for (long i = 0; i < p.requestBody(); i++) {
            digest.update(IntegrityBody.at(p.id() + 100, i));
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    /**
     * The backend answers each request with 16 KB in one write, so each answer reaches the proxy whole in one read,
     * and nothing in relaying a body ever waits for the client. A client that sends 2000 such requests (30 MiB of
     * answers) and reads nothing may have only what the socket buffers and the proxy's bounded write buffer hold
     * taken up; the rest waits, unread, until it reads.
     */
    @Test
    void aClientThatPipelinesWithoutReadingIsAnsweredOnlyAsFastAsItReads() throws Exception {
        int requests = 2000;
        // With its head, an answer stays under 16 KiB: the proxy's read buffer settles at that size, so each answer
        // arrives in one read (one a little larger would now and then be split, and the split waits for the client).
        int answerBytes = 16_000;
        AtomicInteger served = new AtomicInteger();
        SocketBackend socketBackend = fixture.closedAfterTest(SocketBackend.start("one-read-answers", connection -> {
            InputStream in = connection.getInputStream();
            OutputStream out = connection.getOutputStream();
            String head;
            while ((head = SocketBackend.readHead(in)) != null) {
                String path = head.substring(head.indexOf(' ') + 1, head.indexOf(' ', head.indexOf(' ') + 1));
                served.incrementAndGet();
                ByteArrayOutputStream answer = new ByteArrayOutputStream(answerBytes + 100);
                answer.writeBytes(("HTTP/1.1 200 OK\r\nX-Path: " + path + "\r\nContent-Length: " + answerBytes
                        + "\r\n\r\n").getBytes(US_ASCII));
                answer.writeBytes(new byte[answerBytes]);
                out.write(answer.toByteArray());
                out.flush();
            }
        }));
        StringBuilder all = new StringBuilder();
        for (int i = 0; i < requests; i++) {
            all.append("GET /p/").append(i).append(" HTTP/1.1\r\nHost: localhost\r\n\r\n");
        }

        try (MtlsClient client = clientOf(socketBackend.url())) {
            // Written on a thread of its own: once the proxy stops reading, the write waits for the reads below.
            CompletableFuture<Void> sent = CompletableFuture.runAsync(() -> {
                try {
                    client.send(all.toString());
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            int takenUp = awaitSteady(served);
            assertThat(takenUp).as("requests forwarded while the client read none of %d answers (%d MiB)", requests,
                    (long) requests * answerBytes >> 20).isLessThan(requests / 2);

            for (int i = 0; i < requests; i++) {
                Response response = client.readResponse();
                assertThat(response.header("x-path")).as("answer %d", i).isEqualTo("/p/" + i);
                assertThat(response.body()).hasSize(answerBytes);
            }
            sent.get(5, TimeUnit.SECONDS);
        }
        assertThat(served.get()).isEqualTo(requests);
    }

    /** The count once it has started and then not moved for a second (or has reached everything there is). */
    private static int awaitSteady(AtomicInteger count) throws InterruptedException {
        int last = 0;
        int steady = 0;
        while (last == 0 || steady < 4) {
            Thread.sleep(250);
            int now = count.get();
            steady = now == last ? steady + 1 : 0;
            last = now;
        }
        return last;
    }
}
