package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The proxy speaks HTTP/1.x only (README, "Behaviour where HTTP leaves a choice"). A client that would prefer HTTP/2
 * must end up speaking HTTP/1.1 or be refused before anything reaches the backend: an HTTP/2 frame stream forwarded
 * as bytes would carry requests no route ever checked.
 */
class Http2ClientsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static TestBackend backend;
    static RunningProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = TestBackend.start();
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", backend.url())
                .route("all", "/", "shop", "orders")
                .start();
    }

    @AfterAll
    static void stop() {
        proxy.close();
        backend.close();
    }

    @Test
    void aClientOfferingH2InAlpnIsNotGivenItAndSpeaksHttp11() throws Exception {
        var context = MtlsClient.clientContext(pki.root(), pki.client(ORDERS));
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory()
                .createSocket(proxy.address().getAddress(), proxy.address().getPort())) {
            socket.setSoTimeout(10_000);
            var params = socket.getSSLParameters();
            params.setApplicationProtocols(new String[] {"h2", "http/1.1"});
            socket.setSSLParameters(params);
            socket.startHandshake();

            assertThat(socket.getApplicationProtocol()).as("protocol the server selected").isNotEqualTo("h2");
            socket.getOutputStream().write(
                    "GET /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                            .getBytes(StandardCharsets.US_ASCII));
            var response = new ByteArrayOutputStream();
            socket.getInputStream().transferTo(response);
            assertThat(response.toString(StandardCharsets.US_ASCII)).startsWith("HTTP/1.1 200 ");
        }
        assertThat(backend.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/orders");
    }

    @Test
    void http2WithPriorKnowledgeIsRefusedAndNothingIsForwarded() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            // The connection preface (RFC 9113, 3.4) followed by an empty SETTINGS frame.
            client.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0");
            // 505 HTTP Version Not Supported: read as HTTP/1, the preface is a request of version HTTP/2.0.
            assertThat(client.readResponse().status()).isEqualTo(505);
            assertThat(client.closedWithin(5_000)).as("connection closed after 505").isTrue();
        }
        assertThat(backend.nextRequest(300, TimeUnit.MILLISECONDS)).as("backend saw a request").isNull();
    }
}
