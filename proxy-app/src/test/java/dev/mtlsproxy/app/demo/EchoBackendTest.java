package dev.mtlsproxy.app.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class EchoBackendTest {

    private static final int ONE_MIB = 1024 * 1024;
    private static final ObjectMapper MAPPER = new ObjectMapper();
    /** Quotes, semicolons and a backslash: the JSON must escape them, not break. */
    private static final String XFCC =
            "By=spiffe://demo.local/proxy;URI=spiffe://demo.local/orders;Subject=\"CN=orders,O=mtls-proxy demo\";x=\\";

    private EchoBackend backend;
    private HttpClient client;

    @BeforeEach
    void start() throws InterruptedException {
        backend = EchoBackend.start("127.0.0.1", 0);
        client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .build();
    }

    @AfterEach
    void stop() {
        backend.close();
    }

    @Test
    void bindsAnEphemeralPort() {
        assertThat(backend.port()).isPositive();
    }

    @Test
    void echoesARequestWithAOneMebibyteBody() throws Exception {
        byte[] body = new byte[ONE_MIB];
        new Random(42).nextBytes(body);

        HttpResponse<String> response = client.send(
                HttpRequest.newBuilder(uri("/orders/42?verbose=true"))
                        .timeout(Duration.ofSeconds(10))
                        .header("X-Forwarded-Client-Cert", XFCC)
                        .header("X-Forwarded-For", "127.0.0.1")
                        .POST(HttpRequest.BodyPublishers.ofByteArray(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("content-type")).hasValue("application/json");
        JsonNode json = MAPPER.readTree(response.body());
        assertThat(json.get("backend").asText()).isEqualTo("demo echo");
        assertThat(json.get("method").asText()).isEqualTo("POST");
        assertThat(json.get("path").asText()).isEqualTo("/orders/42?verbose=true");
        assertThat(json.get("identity").asText()).isEqualTo(XFCC);
        assertThat(json.get("forwardedFor").asText()).isEqualTo("127.0.0.1");
        assertThat(json.get("bodyBytes").asLong()).isEqualTo(ONE_MIB);
        assertThat(json.size()).isEqualTo(6);
    }

    @Test
    void reportsMissingHeadersAsNull() throws Exception {
        HttpResponse<String> response = client.send(
                HttpRequest.newBuilder(uri("/")).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
        JsonNode json = MAPPER.readTree(response.body());
        assertThat(json.get("method").asText()).isEqualTo("GET");
        assertThat(json.get("identity").isNull()).isTrue();
        assertThat(json.get("forwardedFor").isNull()).isTrue();
        assertThat(json.get("bodyBytes").asLong()).isZero();
    }

    @Test
    void countsAChunkedBody() throws Exception {
        byte[] body = new byte[3 * ONE_MIB + 7];
        // An InputStream of unknown length makes HttpClient send Transfer-Encoding: chunked.
        HttpResponse<String> response = client.send(
                HttpRequest.newBuilder(uri("/upload"))
                        .timeout(Duration.ofSeconds(10))
                        .PUT(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(body)))
                        .build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
        JsonNode json = MAPPER.readTree(response.body());
        assertThat(json.get("method").asText()).isEqualTo("PUT");
        assertThat(json.get("bodyBytes").asLong()).isEqualTo(body.length);
    }

    @Test
    void answersExpectContinue() throws Exception {
        HttpResponse<String> response = client.send(
                HttpRequest.newBuilder(uri("/"))
                        .timeout(Duration.ofSeconds(10))
                        .expectContinue(true)
                        .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[ONE_MIB]))
                        .build(),
                HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(MAPPER.readTree(response.body()).get("bodyBytes").asLong()).isEqualTo(ONE_MIB);
    }

    @Test
    void servesTwoRequestsOnOneConnection() throws Exception {
        try (Socket socket = connect()) {
            OutputStream out = socket.getOutputStream();
            InputStream in = socket.getInputStream();

            out.write(ascii("POST /first HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"));
            out.flush();
            RawResponse first = RawResponse.read(in);
            out.write(ascii("GET /second HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Client-Cert: URI=x\r\n\r\n"));
            out.flush();
            RawResponse second = RawResponse.read(in);

            assertThat(first.status()).isEqualTo(200);
            assertThat(first.header("connection")).isNull();
            assertThat(MAPPER.readTree(first.body()).get("path").asText()).isEqualTo("/first");
            assertThat(MAPPER.readTree(first.body()).get("bodyBytes").asLong()).isEqualTo(5);
            assertThat(second.status()).isEqualTo(200);
            assertThat(MAPPER.readTree(second.body()).get("path").asText()).isEqualTo("/second");
            assertThat(MAPPER.readTree(second.body()).get("identity").asText()).isEqualTo("URI=x");
            assertThat(MAPPER.readTree(second.body()).get("bodyBytes").asLong()).isZero();
        }
    }

    @Test
    void servesPipelinedRequestsInOrder() throws Exception {
        try (Socket socket = connect()) {
            socket.getOutputStream().write(ascii(
                    "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n"
                            + "POST /b HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
            socket.getOutputStream().flush();

            RawResponse a = RawResponse.read(socket.getInputStream());
            RawResponse b = RawResponse.read(socket.getInputStream());

            assertThat(MAPPER.readTree(a.body()).get("path").asText()).isEqualTo("/a");
            assertThat(MAPPER.readTree(b.body()).get("path").asText()).isEqualTo("/b");
            assertThat(MAPPER.readTree(b.body()).get("bodyBytes").asLong()).isEqualTo(5);
        }
    }

    @Test
    void closesWhenTheClientAsksTo() throws Exception {
        try (Socket socket = connect()) {
            socket.getOutputStream().write(ascii("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
            socket.getOutputStream().flush();

            RawResponse response = RawResponse.read(socket.getInputStream());

            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("connection")).isEqualTo("close");
            assertThat(socket.getInputStream().read()).as("end of stream").isEqualTo(-1);
        }
    }

    @Test
    void keepsHttp10AliveOnlyWhenAsked() throws Exception {
        try (Socket socket = connect()) {
            socket.getOutputStream().write(ascii("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
            socket.getOutputStream().flush();
            RawResponse kept = RawResponse.read(socket.getInputStream());
            socket.getOutputStream().write(ascii("GET /old HTTP/1.0\r\n\r\n"));
            socket.getOutputStream().flush();
            RawResponse closed = RawResponse.read(socket.getInputStream());

            assertThat(kept.status()).isEqualTo(200);
            assertThat(kept.header("connection")).isEqualToIgnoringCase("keep-alive");
            assertThat(closed.status()).isEqualTo(200);
            assertThat(socket.getInputStream().read()).as("end of stream").isEqualTo(-1);
        }
    }

    @Test
    void rejectsAMalformedRequestAndCloses() throws Exception {
        try (Socket socket = connect()) {
            socket.getOutputStream().write(ascii("GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n"));
            socket.getOutputStream().flush();

            RawResponse response = RawResponse.read(socket.getInputStream());

            assertThat(response.status()).isEqualTo(400);
            assertThat(socket.getInputStream().read()).as("end of stream").isEqualTo(-1);
        }
    }

    @Test
    void stopsListeningWhenClosed() {
        int port = backend.port();
        backend.close();

        assertThatThrownBy(() -> new Socket("127.0.0.1", port).close()).isInstanceOf(ConnectException.class);
    }

    @Test
    void closeIsIdempotent() {
        backend.close();
        backend.close();
    }

    @Test
    void failsToBindAPortInUse() {
        assertThatThrownBy(() -> EchoBackend.start("127.0.0.1", backend.port()))
                .isInstanceOf(UncheckedIOException.class)
                .hasMessageContaining("127.0.0.1:" + backend.port());
    }

    // ---- helpers -------------------------------------------------------------------------------

    private URI uri(String pathAndQuery) {
        return URI.create("http://127.0.0.1:" + backend.port() + pathAndQuery);
    }

    private Socket connect() throws IOException {
        Socket socket = new Socket();
        socket.connect(new InetSocketAddress("127.0.0.1", backend.port()), 5_000);
        // A hung read fails the test instead of waiting for the global timeout.
        socket.setSoTimeout(10_000);
        return socket;
    }

    private static byte[] ascii(String text) {
        return text.getBytes(StandardCharsets.US_ASCII);
    }

    /** Just enough of an HTTP/1.x response reader for Content-Length bodies. */
    private record RawResponse(int status, Map<String, String> headers, byte[] body) {

        String header(String name) {
            return headers.get(name.toLowerCase(Locale.ROOT));
        }

        static RawResponse read(InputStream in) throws IOException {
            String head = readHead(in);
            String[] lines = head.split("\r\n");
            int status = Integer.parseInt(lines[0].split(" ")[1]);
            Map<String, String> headers = new HashMap<>();
            for (int i = 1; i < lines.length; i++) {
                int colon = lines[i].indexOf(':');
                headers.put(lines[i].substring(0, colon).trim().toLowerCase(Locale.ROOT),
                        lines[i].substring(colon + 1).trim());
            }
            int length = Integer.parseInt(headers.getOrDefault("content-length", "0"));
            return new RawResponse(status, headers, in.readNBytes(length));
        }

        private static String readHead(InputStream in) throws IOException {
            ByteArrayOutputStream head = new ByteArrayOutputStream();
            int matched = 0;
            byte[] terminator = ascii("\r\n\r\n");
            while (matched < terminator.length) {
                int b = in.read();
                if (b < 0) {
                    throw new IOException("connection closed inside a response head: " + head);
                }
                head.write(b);
                matched = b == terminator[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
            }
            String text = head.toString(StandardCharsets.US_ASCII);
            return text.substring(0, text.length() - terminator.length);
        }
    }
}
