package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A client granted {@code /public} but denied {@code /public/$batch} and the DELETE method tries to make the backend
 * serve something the policy did not judge: another spelling of a denied path, a method in lower case, a version
 * that skips the rules of HTTP/1.1, or a header that restates the target or the method. The backend here is a raw
 * socket that records the exact bytes of each forwarded head, so the test sees what a backend's parser would.
 */
class JudgedRequestIsForwardedTest {

    static final String CLIENT = "spiffe://prod.test/ns/shop/sa/client";
    static final String OPS = "spiffe://prod.test/ns/ops/sa/ops";

    @TempDir
    static Path dir;
    static TestPki pki;
    static RawBackend backend;
    static RunningProxy proxy;

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = RawBackend.start();
        proxy = RunningProxy.builder(pki)
                .identity("client", CLIENT)
                .identity("ops", OPS)
                .backend("shop", backend.url())
                .route(new RouteConfig("public", null, "/public", List.of(), "shop", List.of(), List.of(
                        new RuleConfig(null, List.of("client"), null, List.of("/public/$batch"), null),
                        new RuleConfig(null, List.of("client"), List.of("DELETE"), null, null),
                        new RuleConfig(List.of("client"), null, null, null, null)), null, null))
                .route(new RouteConfig("shop-host", "shop.test", "/", List.of(), "shop", List.of("client")))
                .route(new RouteConfig("admin-host", "admin.test", "/", List.of(), "shop", List.of("ops")))
                .route(new RouteConfig("diagnostics", null, "/diag", List.of("TRACE"), "shop", List.of("client")))
                .start();
    }

    @AfterAll
    static void stop() throws IOException {
        proxy.close();
        backend.close();
    }

    @BeforeEach
    void forgetEarlierRequests() {
        backend.heads.clear();
    }

    @Test
    void anEscapedSpellingOfADeniedPathIsDenied() throws Exception {
        try (MtlsClient client = connect()) {
            assertThat(client.get("/public/$batch").status()).isEqualTo(403);
            assertThat(client.get("/public/%24batch").status()).as("%24 is $ to every backend").isEqualTo(403);
            assertThat(client.get("/public/%24%62atch").status()).isEqualTo(403);
        }
        assertThat(backend.nextHead()).as("forwarded").isNull();
    }

    @Test
    void theBackendReceivesTheSpellingThePolicyJudged() throws Exception {
        try (MtlsClient client = connect()) {
            assertThat(client.get("/public/%24metadata/items%3Aget?q=%24x").status()).isEqualTo(200);
        }
        assertThat(backend.nextHead()).startsWith("GET /public/$metadata/items:get?q=%24x HTTP/1.1\r\n");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        // Kept encoded it is a plain segment to the policy, but "/public/..;/admin", then "/admin", to a backend
        // that strips path parameters after decoding.
        "GET /public/..%3B/admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
        // A NUL in the query would reach the backend raw; a byte above 0x7F would reach it re-encoded as UTF-8.
        "GET /public/x?a\u0000b HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /public/x?caf\u00e9 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        // Not covered by the deny on DELETE, yet DELETE to a framework that upper-cases the method (Django).
        "delete /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "Delete /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
    })
    void anAmbiguousRequestIsRefusedAndNotForwarded(String request) throws Exception {
        try (MtlsClient client = connect()) {
            client.send(request);
            assertThat(client.readResponse().status()).isEqualTo(400);
            assertThat(client.closedWithin(5_000)).as("connection closed after 400").isTrue();
        }
        assertThat(backend.nextHead()).as("forwarded").isNull();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"HTTP/1.2", "HTTP/0.9", "HTTP/2.0"})
    void aVersionOtherThanHttp1xIsRefusedAndNotForwarded(String version) throws Exception {
        try (MtlsClient client = connect()) {
            // Without Host: an HTTP/1.2 request would otherwise escape the Host requirement of HTTP/1.1, and be
            // forwarded as an HTTP/1.1 request without one.
            client.send("GET /public/x " + version + "\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(505);
            assertThat(client.closedWithin(5_000)).as("connection closed after 505").isTrue();
        }
        assertThat(backend.nextHead()).as("forwarded").isNull();
    }

    @Test
    void headersThatRestateTheTargetOrTheMethodAreRemoved() throws Exception {
        try (MtlsClient client = connect()) {
            client.send("POST /public/items HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n"
                    + "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n"
                    + "X-Original-URL: /public/$batch\r\nX-Rewrite-URL: /public/$batch\r\n"
                    + "X_Original_URL: /public/$batch\r\nX-Real-IP: 10.0.0.1\r\nX-Kept: yes\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        String head = backend.nextHead().toLowerCase(Locale.ROOT);
        assertThat(head).startsWith("post /public/items http/1.1\r\n").contains("\r\nx-kept: yes\r\n")
                .doesNotContain("override", "x-http-method", "original", "rewrite", "real-ip");
    }

    /**
     * gunicorn#2650: gunicorn serves /public/admin as /admin when a field {@code SCRIPT_NAME: /public} comes from a
     * trusted proxy, by default any peer on 127.0.0.1, so a sidecar proxy; PATH_INFO and REMOTE_USER it takes the same
     * way. The policy judged /public/admin, and that is what the backend must serve.
     */
    @Test
    void fieldsGunicornTakesForItsScriptNamePathInfoOrRemoteUserAreRemoved() throws Exception {
        try (MtlsClient client = connect()) {
            client.send("GET /public/admin HTTP/1.1\r\nHost: localhost\r\nSCRIPT_NAME: /public\r\n"
                    + "PATH_INFO: /admin\r\nRemote_User: admin\r\nX-Script-Name: /public\r\nX-Kept: yes\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        String head = backend.nextHead().toLowerCase(Locale.ROOT);
        assertThat(head).startsWith("get /public/admin http/1.1\r\n").contains("\r\nx-kept: yes\r\n")
                .doesNotContain("script", "path_info", "remote_user");
    }

    @Test
    void anHttp10RequestWithoutHostReachesTheBackendWithTheBackendsHost() throws Exception {
        try (MtlsClient client = connect()) {
            // HTTP/1.0 may leave Host out; the request goes on as HTTP/1.1, which must have one (RFC 9112 3.2).
            client.send("GET /public/x HTTP/1.0\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        String head = backend.nextHead();
        assertThat(head).startsWith("GET /public/x HTTP/1.1\r\n")
                .containsOnlyOnce("\r\nhost: ")
                .contains("\r\nhost: " + backend.authority() + "\r\n")
                .doesNotContainIgnoringCase("x-forwarded-host");
    }

    @Test
    void anHttp10RequestInAbsoluteFormWithoutHostIsJudgedAndForwardedForTheHostItNames() throws Exception {
        try (MtlsClient client = connect()) {
            // The target names the host (RFC 9112 3.2.2); only the shop.test route serves "/x", so a 200 means the
            // policy judged shop.test, and the backend gets that name in the spelling judged, not its own.
            client.send("GET http://Shop.Test.:8443/x HTTP/1.0\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend.nextHead()).startsWith("GET /x HTTP/1.1\r\n")
                .containsOnlyOnce("\r\nhost: ")
                .contains("\r\nhost: shop.test:8443\r\n")
                .containsPattern("\r\n(?i:x-forwarded-host): shop\\.test:8443\r\n")
                .doesNotContain(backend.authority());
    }

    @Test
    void anHttp10RequestInAbsoluteFormWithoutHostForAHostTheClientMayNotUseIsDenied() throws Exception {
        try (MtlsClient client = connect()) {
            // admin.test's routes allow only ops: the host from the target is judged like a Host field.
            client.send("GET http://admin.test/x HTTP/1.0\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(403);
        }
        assertThat(backend.nextHead()).as("forwarded").isNull();
    }

    @Test
    void anHttp11RequestInAbsoluteFormWithoutHostIsStillRefused() throws Exception {
        try (MtlsClient client = connect()) {
            // RFC 9112 3.2: an HTTP/1.1 request without Host must get 400, whatever its target names.
            client.send("GET http://shop.test/x HTTP/1.1\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(400);
        }
        assertThat(backend.nextHead()).as("forwarded").isNull();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "SHOP.Test.:8443, /,         shop.test:8443",
        "shop.test.,      /,         shop.test",
        "Shop.Test,       /,         shop.test",
        "[::ABCD]:8443,   /public/x, [::abcd]:8443",
    })
    void theBackendReceivesTheHostThePolicyJudgedWithItsPort(String sent, String path, String judged)
            throws Exception {
        try (MtlsClient client = connect()) {
            client.send("GET " + path + " HTTP/1.1\r\nHost: " + sent + "\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend.nextHead())
                .containsPattern("\r\n(?i:host): " + Pattern.quote(judged) + "\r\n")
                .containsPattern("\r\n(?i:x-forwarded-host): " + Pattern.quote(judged) + "\r\n")
                .doesNotContain(sent + "\r\n");
    }

    @Test
    void traceIsRefusedWith405OnARouteThatDoesNotNameIt() throws Exception {
        try (MtlsClient client = connect()) {
            // TRACE echoes the request it received, X-Forwarded-Client-Cert included, to whoever sent it.
            client.send("TRACE /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
            MtlsClient.Response refused = client.readResponse();
            assertThat(refused.status()).isEqualTo(405);
            assertThat(refused.header("allow")).contains("GET").doesNotContain("TRACE");
            assertThat(refused.header("connection")).isEqualTo("keep-alive");
            assertThat(client.get("/public/x").status()).as("the connection stays usable").isEqualTo(200);
        }
        assertThat(backend.nextHead()).startsWith("GET /public/x ");
        assertThat(backend.nextHead()).as("TRACE forwarded").isNull();
        AccessLogEntry refused = proxy.accessLog().stream()
                .filter(e -> e.method().equals("TRACE") && e.path().equals("/public/x"))
                .findFirst().orElseThrow();
        assertThat(refused.status()).isEqualTo(405);
        assertThat(refused.decision()).isEqualTo("method_not_allowed");
    }

    @Test
    void traceIsForwardedOnARouteThatNamesIt() throws Exception {
        try (MtlsClient client = connect()) {
            client.send("TRACE /diag HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend.nextHead()).startsWith("TRACE /diag HTTP/1.1\r\n");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "True-Client-IP", "X-Client-IP", "Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP",
        "True_Client_IP", "X_Client_IP", "Client_IP", "CF_Connecting_IP", "Fastly_Client_IP", "X_Cluster_Client_IP",
    })
    void aClientIpHeaderTheProxyDoesNotSetIsRemoved(String name) throws Exception {
        try (MtlsClient client = connect()) {
            // Backends take the client's address from these: Rails' remote_ip from Client-IP, for one.
            client.send("GET /public/x HTTP/1.1\r\nHost: localhost\r\n" + name + ": 10.9.8.7\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend.nextHead()).doesNotContain("10.9.8.7").doesNotContainIgnoringCase(name);
    }

    /**
     * A CGI-style backend (Rack, gunicorn, PHP) reads {@code Transfer_Encoding} as HTTP_TRANSFER_ENCODING, the
     * variable of the field the proxy framed the request with, and {@code Keep_Alive} as the hop the proxy removed.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "Transfer_Encoding: chunked", "Content_Length: 4096", "Keep_Alive: timeout=600", "Proxy_Connection: close",
        "Proxy_Authorization: Basic YWRtaW46YWRtaW4=", "Proxy_Authenticate: Basic", "TRANSFER_ENCODING: chunked",
        "content_length: 4096",
    })
    void aHopByHopOrFramingNameSpelledWithUnderscoresIsRemoved(String field) throws Exception {
        String name = field.substring(0, field.indexOf(':'));
        try (MtlsClient client = connect()) {
            client.send("GET /public/x HTTP/1.1\r\nHost: localhost\r\n" + field + "\r\n\r\n");
            assertThat(client.readResponse().status()).isEqualTo(200);
        }
        assertThat(backend.nextHead()).startsWith("GET /public/x HTTP/1.1\r\n").doesNotContainIgnoringCase(name);
    }

    @Test
    void twoSubjectsInAnotherScriptReachTheBackendAsTwoSubjects() throws Exception {
        // The header encoder writes one byte per character: anything above U+00FF became '?', so both were CN=??.
        for (String cn : List.of("\u65e5\u672c", "\u4e2d\u56fd")) {
            try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(),
                    pki.client(CLIENT, b -> b.subject("CN=" + cn + ",O=Jos\u00e9")))) {
                assertThat(client.get("/public/x").status()).isEqualTo(200);
            }
        }
        // Each UTF-8 byte as RFC 4514's \XX; the quoted XFCC value then escapes that backslash as every other.
        String o = ",O=Jos\\\\C3\\\\A9\";";
        assertThat(backend.nextHead()).contains(";Subject=\"CN=\\\\E6\\\\97\\\\A5\\\\E6\\\\9C\\\\AC" + o);
        assertThat(backend.nextHead()).contains(";Subject=\"CN=\\\\E4\\\\B8\\\\AD\\\\E5\\\\9B\\\\BD" + o);
    }

    private static MtlsClient connect() throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(CLIENT));
    }

    /**
     * Answers every request head with an empty 200, keeping the connection, and records the head's exact bytes.
     * The requests of this test have no body.
     */
    static final class RawBackend implements AutoCloseable {
        private static final byte[] OK = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                .getBytes(StandardCharsets.US_ASCII);

        final BlockingQueue<String> heads = new LinkedBlockingQueue<>();
        private final SocketBackend server;

        private RawBackend() throws IOException {
            server = SocketBackend.start("raw-backend", this::serve);
        }

        static RawBackend start() throws IOException {
            return new RawBackend();
        }

        String url() {
            return server.url();
        }

        String authority() {
            return server.authority();
        }

        /** The next forwarded head, or null when none arrives within half a second. */
        String nextHead() throws InterruptedException {
            return heads.poll(500, TimeUnit.MILLISECONDS);
        }

        private void serve(Socket connection) throws IOException {
            InputStream in = connection.getInputStream();
            ByteArrayOutputStream head = new ByteArrayOutputStream();
            int b;
            while ((b = in.read()) >= 0) {
                head.write(b);
                if (endsWithEmptyLine(head)) {
                    heads.add(head.toString(StandardCharsets.ISO_8859_1));
                    head.reset();
                    connection.getOutputStream().write(OK);
                }
            }
        }

        private static boolean endsWithEmptyLine(ByteArrayOutputStream out) {
            byte[] bytes = out.toByteArray();
            int n = bytes.length;
            return n >= 4 && bytes[n - 4] == '\r' && bytes[n - 3] == '\n' && bytes[n - 2] == '\r' && bytes[n - 1] == '\n';
        }

        @Override
        public void close() throws IOException {
            server.close();
        }
    }
}
