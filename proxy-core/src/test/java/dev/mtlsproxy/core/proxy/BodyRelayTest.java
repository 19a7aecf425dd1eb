package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.EOFException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bodies between client and backend (a TLS backend for uploads, echo and trailers; a plain one for downloads): chunked coding and trailers both ways, {@code Expect: 100-continue}, a client
 * that stops reading (the backend is slowed, the heap does not grow) and a backend that stops sending.
 */
class BodyRelayTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static TestBackend plain;
    static TestBackend tls;
    static RunningProxy proxy;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(ForwardingHandler.class);

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        plain = TestBackend.start();
        tls = TestBackend.start(TestBackend.tlsContext(pki.backendServer("backend", b -> b
                .addSanIpAddress("127.0.0.1")), null));
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("plain", BackendConfig.of(List.of(URI.create(plain.url())), null)
                        .withTimeouts(null, null, Duration.ofMillis(300)))
                .backend("tls", BackendConfig.of(List.of(URI.create(tls.url())),
                        BackendTlsConfig.trusting(pki.caPem())))
                .route("upload", "/upload", "tls", "orders")
                .route("trailers", "/trailers", "tls", "orders")
                .route("echo", "/echo", "tls", "orders")
                .route("download", "/download", "plain", "orders")
                .route("stall", "/stall", "plain", "orders")
                .start();
    }

    @AfterAll
    static void stop() {
        proxy.close();
        plain.close();
        tls.close();
    }

    private static MtlsClient client() throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }

    @Test
    void aChunkedRequestKeepsItsTrailersButNeverAnIdentityHeaderInThem() throws Exception {
        try (MtlsClient client = client()) {
            client.send("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 1234\r\n"
                    + "x-forwarded-client-cert: By=spiffe://prod.test/admin\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        TestBackend.Recorded seen = tls.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.bodyBytes()).isEqualTo(11);
        assertThat(seen.headers().get("transfer-encoding")).isEqualTo("chunked");
        assertThat(seen.trailers().get("x-checksum")).isEqualTo("1234");
        assertThat(seen.trailers().contains("x-forwarded-client-cert")).isFalse();
        assertThat(seen.headers().get("x-forwarded-client-cert")).endsWith(";URI=" + ORDERS);
    }

    @Test
    void aChunkedResponseReachesTheClientWithItsTrailers() throws Exception {
        try (MtlsClient client = client()) {
            Response response = client.get("/trailers");
            assertThat(response.header("transfer-encoding")).isEqualTo("chunked");
            assertThat(response.bodyText()).isEqualTo("trailers follow\n");
            assertThat(response.trailer("x-checksum")).isEqualTo("c0ffee");
        }
        tls.nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void expectContinueIsAnsweredThenAChunkedBodyIsEchoedChunked() throws Exception {
        try (MtlsClient client = client()) {
            client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(100);
            client.send("3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
            Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("abcdefg");
        }
        TestBackend.Recorded seen = tls.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.headers().contains("expect")).as("the proxy answered it; the backend is not asked").isFalse();
    }

    @Test
    void anHttp10ExpectContinueIsIgnoredAndNotRelayed() throws Exception {
        // RFC 9110 10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request. An HTTP/1.0
        // client does not wait for a 100 (it has no interim responses) and is not sent one.
        try (MtlsClient client = client()) {
            client.send("POST /echo HTTP/1.0\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                    + "Content-Length: 7\r\n\r\nabcdefg");
            Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("abcdefg");
        }
        TestBackend.Recorded seen = tls.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.headers().contains("expect")).as("the request is forwarded as HTTP/1.1: not with it").isFalse();
    }

    @Test
    void aClientThatStopsReadingStopsTheBackendInsteadOfGrowingTheHeap() throws Exception {
        long before = plain.downloadBytesProduced();
        int connectionsBefore = plain.openConnections();
        try (MtlsClient client = client()) {
            client.send("GET /download?bytes=" + (1L << 30) + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assertThat(client.input().read()).as("the response starts").isEqualTo('H');
            // Not reading any further: the backend can only fill the socket buffers and the proxy's bounded
            // outbound buffer, then it must stall.
            long[] last = {-1};
            await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(500)).until(() -> {
                long now = plain.downloadBytesProduced() - before;
                boolean stalled = now == last[0] && now > 0;
                last[0] = now;
                return stalled;
            });
            Thread.sleep(1_000);
            long produced = plain.downloadBytesProduced() - before;
            assertThat(produced).as("bytes the backend could write while nobody read").isEqualTo(last[0])
                    .isLessThan(64L << 20);
        }
        // The client went away mid-body: the backend connection is closed, never pooled half-read.
        await().atMost(Duration.ofSeconds(5)).until(() -> plain.openConnections() == connectionsBefore);
        plain.nextRequest(5, TimeUnit.SECONDS);
    }

    @Test
    void aBackendThatStopsSendingMidBodyIsCutOffAfterTheBodyIdleTimeout() throws Exception {
        double okBefore = proxy.count("mtls.proxy.backend.requests", "backend", "plain", "result", "ok");
        try (MtlsClient client = client()) {
            client.send("GET /stall?bytes=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            Throwable failure = catchThrowable(client::readResponse);
            assertThat(failure).as("a truncated body, never a complete one").isInstanceOf(EOFException.class);
        }
        assertThat(log.await("backend=plain", "after=response_started"))
                .contains("cause=\"response body idle for 300ms\"");
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "plain", "result", "timeout"))
                .isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "plain", "result", "ok"))
                .as("one request, one result: the stalled one is not also counted ok for its headers")
                .isEqualTo(okBefore);
        plain.nextRequest(5, TimeUnit.SECONDS);
    }
}
