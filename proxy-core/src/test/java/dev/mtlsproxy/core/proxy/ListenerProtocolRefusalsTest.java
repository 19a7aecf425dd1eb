package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.net.Socket;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What the listener refuses below HTTP: protocol versions older than TLS 1.2, offered by a client that speaks
 * nothing newer, and a TLS 1.2 renegotiation, the way a client would change its certificate on an open connection.
 */
class ListenerProtocolRefusalsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .backend("shop", backend.url())
            .route("orders-api", "/orders", "shop", "orders"));

    /** TLS record and ClientHello versions: SSL 3.0, TLS 1.0, TLS 1.1. */
    @ParameterizedTest(name = "0x{0}")
    @ValueSource(strings = {"0300", "0301", "0302"})
    void aClientOfferingOnlyAnOldProtocolGetsAProtocolVersionAlert(String version) throws Exception {
        int major = Integer.parseInt(version.substring(0, 2), 16);
        int minor = Integer.parseInt(version.substring(2), 16);
        Map<String, Double> before = fixture.proxy().handshakeFailures();

        byte[] answer;
        try (Socket socket = new Socket(fixture.proxy().address().getAddress(), fixture.proxy().address().getPort())) {
            socket.setSoTimeout(5_000);
            socket.getOutputStream().write(clientHello(major, minor));
            DataInputStream in = new DataInputStream(socket.getInputStream());
            answer = new byte[7];
            in.readFully(answer);
        }

        // A fatal alert record (21), level fatal (2), protocol_version (70): no ServerHello, nothing negotiated.
        assertThat(answer[0]).isEqualTo((byte) 21);
        assertThat(answer[5]).isEqualTo((byte) 2);
        assertThat(answer[6]).isEqualTo((byte) 70);
        assertThat(fixture.proxy().awaitNewHandshakeFailure(before)).isEqualTo("protocol_version");
    }

    @Test
    void aTls12RenegotiationIsRefusedAndEndsTheConnection() throws Exception {
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(),
                fixture.pki().client(ORDERS), "TLSv1.2")) {
            assertThat(client.get("/orders/1").status()).isEqualTo(200);
            assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS)).isNotNull();

            // BoringSSL never renegotiates as a server: a client cannot swap its certificate, and so its identity,
            // under a connection the proxy has already judged.
            Throwable refused = catchThrowable(() -> {
                client.renegotiate();
                client.get("/orders/2");
            });

            assertThat(refused).isInstanceOf(IOException.class).hasMessageContaining("no_renegotiation");
        }
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
    }

    /**
     * A ClientHello of the given version, as an SSL 3.0 to TLS 1.1 client sends it: CBC suites and no extensions,
     * since none of those versions needs one.
     */
    private static byte[] clientHello(int major, int minor) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.write(major);
        body.write(minor);
        body.writeBytes(new byte[32]); // client random
        body.write(0); // no session id
        int[] suites = {0xc013, 0xc009, 0x002f, 0x0035};
        body.write(0);
        body.write(suites.length * 2);
        for (int suite : suites) {
            body.write(suite >> 8);
            body.write(suite & 0xff);
        }
        body.write(1); // one compression method: null
        body.write(0);
        byte[] hello = body.toByteArray();
        ByteArrayOutputStream record = new ByteArrayOutputStream();
        record.write(22); // handshake
        record.write(major);
        record.write(minor);
        int handshakeLength = hello.length + 4;
        record.write(handshakeLength >> 8);
        record.write(handshakeLength & 0xff);
        record.write(1); // ClientHello
        record.write(0);
        record.write(hello.length >> 8);
        record.write(hello.length & 0xff);
        record.writeBytes(hello);
        return record.toByteArray();
    }
}
