package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The {@code event=bad_request} line quotes the HTTP decoder's message, and the decoder's messages quote what the
 * client sent: a header name, a version, a Content-Length value. docs/LOGS.md promises that a {@code "} inside a
 * quoted value is written as {@code '}; without that, a client with a trusted certificate wrote fields of its own
 * into the proxy's log ({@code problem="... not a number: 1" event=forged x=""}), and terminal escape sequences
 * into the terminal of whoever read it.
 */
class BadRequestLogLineTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    /** The line as the code writes it: nothing after the problem, and the problem one quoted value. */
    static final String ONE_PROBLEM = "event=bad_request remote=/127\\.0\\.0\\.1:\\d+ problem=\"[^\"\\p{Cntrl}]*\"";

    @RegisterExtension
    static final LogCapture log = LogCapture.of(RequestGuard.class);

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .backend("app", backend.url())
            .route("app", "/", "app", "orders"));

    @ParameterizedTest
    @ValueSource(strings = {
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\" event=forged x=\"\r\n\r\n",
        "GET / HTTP/1.1\" remote=forged\r\nHost: localhost\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nX\" event=forged a=\"b: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nX\u001b]0;owned\u0007: 1\r\n\r\n",
    })
    void whatTheClientSentStaysInsideTheProblemField(String request) throws Exception {
        String remote;
        try (MtlsClient client = fixture.connect(ORDERS)) {
            remote = "remote=/127.0.0.1:" + client.localAddress().getPort() + " ";
            client.send(request);

            assertThat(client.readResponse().status()).isEqualTo(400);
        }

        String line = log.await("event=bad_request", remote);
        assertThat(line).matches(ONE_PROBLEM).contains("malformed request: ");
    }
}
