package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The status a backend answers with. Any three digits from 100 to 999 are a status (RFC 9112 4: {@code 3DIGIT}) and
 * reach the client as the backend sent them; 600 to 999 belong to no HTTP class, and are counted under
 * {@code status_class} {@code 6xx} to {@code 9xx} (docs/METRICS.md). A status line without such a status is no
 * response: 502, the backend's bytes never reaching the client (README, "Backend responses are framed as strictly as
 * requests").
 */
class BackendStatusCodesTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    final LogCapture log = LogCapture.of(ForwardingHandler.class);
    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    @ParameterizedTest(name = "{0}")
    @ValueSource(ints = {600, 799, 999})
    void aStatusBeyondTheHttpClassesReachesTheClientAndIsCountedByItsHundreds(int status) throws Exception {
        RunningProxy proxy = proxyInFrontOfABackendAnswering(status + " Beyond");

        try (MtlsClient client = fixture.connect(ORDERS)) {
            MtlsClient.Response response = client.get("/orders");
            assertThat(response.status()).isEqualTo(status);
            assertThat(response.bodyText()).isEqualTo("hello");
        }
        // Counted when the exchange ends, which may be just after the client has read the answer.
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(
                proxy.count("mtls.proxy.requests", "route", "all", "status_class", status / 100 + "xx", "decision",
                        "allow")).isEqualTo(1.0));
    }

    @ParameterizedTest(name = "\"{0}\"")
    @ValueSource(strings = {"099", "000", "1000", "2x0", "20", "-20", "OK"})
    void aStatusLineWithoutAStatusFrom100To999IsAnsweredWith502(String status) throws Exception {
        RunningProxy proxy = proxyInFrontOfABackendAnswering(status + " Whatever");

        try (MtlsClient client = fixture.connect(ORDERS)) {
            MtlsClient.Response response = client.get("/orders");
            assertThat(response.status()).isEqualTo(502);
            assertThat(response.bodyText()).doesNotContain("hello");
        }
        assertThat(log.await("backend=shop", "status=502")).contains("cause=\"invalid response: invalid status line\"");
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(
                proxy.count("mtls.proxy.requests", "route", "all", "status_class", "5xx", "decision", "allow"))
                .isEqualTo(1.0));
    }

    /** A backend answering every request with {@code HTTP/1.1 <statusAndReason>} and the body {@code hello}. */
    private RunningProxy proxyInFrontOfABackendAnswering(String statusAndReason) throws Exception {
        SocketBackend backend = fixture.closedAfterTest(SocketBackend.start("status-backend", connection -> {
            InputStream in = connection.getInputStream();
            OutputStream out = connection.getOutputStream();
            while (SocketBackend.readHead(in) != null) {
                out.write(("HTTP/1.1 " + statusAndReason + "\r\nContent-Length: 5\r\n\r\nhello").getBytes(US_ASCII));
                out.flush();
            }
        }));
        return fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", backend.url())
                .route("all", "/", "shop", "orders"));
    }
}
