package dev.mtlsproxy.core.proxy;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.IoTransport;
import dev.mtlsproxy.config.WorkersConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.SocketBackend;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Seeded generative end-to-end test: a backend on a raw socket answers with valid responses and with mutations of
 * them (status lines, framing fields, obs-fold, bare LF, control bytes, huge heads, bad chunks, bodies longer or
 * shorter than announced, bytes after the response, interim 1xx, early answers, writes split at random boundaries,
 * closes at random points), to GET, HEAD and POST from HTTP/1.1 keep-alive and HTTP/1.0 clients. A strict RFC 9112
 * reader of its own (not the proxy's code) checks what each client receives:
 * <ol>
 *   <li>for each request exactly one final response, in order: the backend's, a 502 from the proxy, or a closed
 *       connection; never bytes past a response served as the answer to a later request, on the same client
 *       connection or on another client's connection reusing the pooled backend connection (a probe from a second
 *       client after every case, on the proxy's single event loop, so it shares the pool);</li>
 *   <li>every response framed unambiguously: one Content-Length or chunked, valid chunks, no obs-fold, no bare CR or
 *       LF, no control bytes;</li>
 *   <li>no hop-by-hop field and no field the backend named in Connection;</li>
 *   <li>exactly the backend's body bytes, or a connection closed before the framing said the body ended;</li>
 *   <li>no body after HEAD, 204 or 304, and bytes sent after those never reach a client;</li>
 *   <li>a backend connection with bytes past its response is closed, not pooled.</li>
 * </ol>
 * A failure names the seed and case and shows the exact bytes both ways, and what the proxy logged meanwhile; each
 * case that found a bug is kept as an explicit test in BrokenBackendResponseTest or BackendResponseHeadTest.
 *
 * <p>The proxy's warnings about the hostile responses (hundreds per run, all expected) are captured instead of
 * printed ({@link LogCapture#quietly}) and checked here: each 502 of the proxy's own was logged as a backend
 * failure, and nothing but backend failures and retries was logged. Every other logger still prints.
 *
 * <p>One timing rule is the protocol's, not the proxy's: bytes a backend sends after a response can only be told from
 * the response to the next request if they arrive before that request is sent. So a client sends its next request
 * only once the backend wrote all of its script, and, when the script had bytes past the response, once the proxy
 * closed that backend connection (which is itself property 6).
 */
class HostileBackendResponseFuzzTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final int CASES_PER_SEED = 50;

    @TempDir
    static Path dir;
    static TestPki pki;
    static ScriptedBackend backend;
    static RunningProxy proxy;

    @RegisterExtension
    static final LogCapture proxyLog = LogCapture.quietly(ForwardingHandler.class);

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        backend = ScriptedBackend.start();
        IoTransport transport = IoTransport.valueOf(
                System.getProperty("mtlsproxy.test.transport", "auto").toUpperCase(Locale.ROOT));
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(List.of(URI.create(backend.url())), null)
                        .withTimeouts(null, Duration.ofSeconds(5), Duration.ofSeconds(5)))
                .route("all", "/", "shop", "orders")
                // One event loop: every client shares one pool, so a leftover on a pooled connection would reach
                // the next client that asks, which is what the probe checks.
                .workers(new WorkersConfig(1, null, null, transport))
                .start();
    }

    @AfterAll
    static void stop() throws IOException {
        if (proxy != null) {
            proxy.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    static LongStream seeds() {
        return LongStream.of(0x5eed_0001L, 0x5eed_0002L, 0x5eed_0003L, 0x5eed_0004L, 0x5eed_0005L);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void whateverTheBackendSendsEachClientGetsItsOwnResponseFramedStrictlyOrA502OrAClose(long seed)
            throws Exception {
        Random random = new Random(seed);
        // The second client: kept open across cases, so its probes reuse whatever the pool holds.
        MtlsClient[] second = {null};
        try {
            for (int c = 0; c < CASES_PER_SEED; c++) {
                Generator generator = new Generator(random, seed + "-" + c);
                List<Exchange> exchanges = new ArrayList<>();
                for (int e = 1 + random.nextInt(3); e > 0; e--) {
                    exchanges.add(generator.exchange());
                }
                runCase(seed, c, exchanges, generator.probe(), second);
            }
        } finally {
            if (second[0] != null) {
                second[0].close();
            }
        }
    }

    /**
     * Runs one case's exchanges on a client connection (a new one whenever the last was closed), then the probe on
     * the second client's connection.
     */
    static void runCase(long seed, int c, List<Exchange> exchanges, Exchange probe, MtlsClient[] second)
            throws Exception {
        List<String> story = new ArrayList<>();
        int caseLogged = proxyLog.lines().size();
        MtlsClient client = null;
        try {
            for (Exchange exchange : exchanges) {
                backend.register(exchange);
                if (client == null) {
                    client = connect();
                }
                story.add(exchange.describe());
                int exchangeLogged = proxyLog.lines().size();
                Received received = exchange.perform(client);
                story.add("  client received: " + (received == null ? "nothing, connection closed" : received));
                assertOwn502WasLogged(received, exchange, exchangeLogged);
                boolean open = exchange.check(received);
                exchange.awaitBackendDone();
                if (!open) {
                    client.close();
                    client = null;
                }
            }
            if (client != null) {
                assertThat(client.input().available()).as("bytes nobody asked for").isZero();
            }
            backend.register(probe);
            if (second[0] == null) {
                second[0] = connect();
            }
            story.add(probe.describe() + " (second client)");
            int probeLogged = proxyLog.lines().size();
            Received received = probe.perform(second[0]);
            story.add("  client received: " + (received == null ? "nothing, connection closed" : received));
            assertOwn502WasLogged(received, probe, probeLogged);
            if (!probe.check(received)) {
                second[0].close();
                second[0] = null;
            }
            assertThat(loggedSince(caseLogged)).as("what the proxy logged: backend failures and retries only")
                    .allMatch(line -> line.startsWith("event=backend_failed ")
                            || line.startsWith("event=backend_retry "));
        } catch (AssertionError | Exception failure) {
            throw new AssertionError("seed 0x" + Long.toHexString(seed) + " case " + c + ": "
                    + failure.getMessage() + "\n" + String.join("\n", story) + "\nthe proxy logged:\n  "
                    + String.join("\n  ", loggedSince(caseLogged)), failure);
        } finally {
            if (client != null) {
                client.close();
            }
        }
    }

    /**
     * A 502 of the proxy's own (no X-Case from the backend) leaves its warning, written before the response: the
     * operator sees why. Lines from before {@code since} do not count.
     */
    static void assertOwn502WasLogged(Received received, Exchange exchange, int since) {
        if (received != null && received.status == 502 && !exchange.id.equals(received.field("x-case"))) {
            assertThat(loggedSince(since)).as("the proxy's warning for its own 502")
                    .anyMatch(line -> line.startsWith("event=backend_failed ") && line.endsWith(" status=502"));
        }
    }

    static List<String> loggedSince(int index) {
        List<String> lines = proxyLog.lines();
        return lines.subList(Math.min(index, lines.size()), lines.size());
    }

    static MtlsClient connect() throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
    }

    // ---- what is sent, and what must come back ----------------------------------------------------------------

    enum Outcome {
        /** The backend's response reaches the client: status, end-to-end fields, body, all as sent. */
        RELAYED,
        /** Nothing of the backend's response reaches the client: the proxy answers 502. */
        BAD_GATEWAY,
        /** The response goes bad after its head: a 502, or its head and part of its body, then a close. */
        CUT
    }

    /** One request and the backend's script for it, with what the client must see. */
    static final class Exchange {
        final String id;
        final String method;
        final boolean http10;
        /** POST whose backend answers after the head, while the client has sent half of the body. */
        final boolean early;
        final byte[] requestBody;
        final List<byte[]> parts = new ArrayList<>();
        final List<Integer> delays = new ArrayList<>();
        boolean closeAfter;
        Outcome outcome = Outcome.RELAYED;
        int status;
        byte[] body = new byte[0];
        /** End-to-end fields the client must get, name and value without surrounding whitespace. */
        final List<String[]> fields = new ArrayList<>();
        /** Field names, lower case, that must not reach the client. */
        final Set<String> hopByHop = new java.util.HashSet<>(Set.of("keep-alive", "proxy-connection", "te",
                "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"));
        /** Trailer fields the client must get. */
        final List<String[]> trailers = new ArrayList<>();
        /** The script has bytes past the response: the proxy must close this backend connection. */
        boolean leftover;
        final List<String> mutations = new ArrayList<>();
        final Semaphore written = new Semaphore(0);
        final CountDownLatch connectionEnded = new CountDownLatch(1);

        Exchange(String id, String method, boolean http10, boolean early, byte[] requestBody) {
            this.id = id;
            this.method = method;
            this.http10 = http10;
            this.early = early;
            this.requestBody = requestBody;
        }

        String path() {
            return "/fuzz/" + id;
        }

        byte[] script() {
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            parts.forEach(all::writeBytes);
            return all.toByteArray();
        }

        boolean bodiless() {
            return method.equals("HEAD") || status == 204 || status == 304;
        }

        Received perform(MtlsClient client) throws IOException {
            StringBuilder head = new StringBuilder(method).append(' ').append(path())
                    .append(http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n").append("Host: localhost\r\n");
            if (requestBody != null) {
                head.append("Content-Length: ").append(requestBody.length).append("\r\n");
            }
            head.append("\r\n");
            OutputStream out = client.output();
            out.write(head.toString().getBytes(ISO_8859_1));
            if (requestBody != null) {
                out.write(requestBody, 0, early ? requestBody.length / 2 : requestBody.length);
            }
            out.flush();
            return new StrictResponseReader(client.input()).read(method.equals("HEAD"), http10);
        }

        /** Asserts the properties for what the client received; returns whether its connection stays open. */
        boolean check(Received r) {
            if (r == null && outcome == Outcome.CUT) {
                // The head and the first part of the body were written but not yet flushed when the body went bad:
                // the close drops them, and the client sees its connection closed without an answer (property 1
                // allows it: a 502 could have been sent, but the proxy had committed to the backend's response).
                return false;
            }
            assertThat(r).as("a response or part of one; the proxy closed without a byte").isNotNull();
            boolean fromBackend = id.equals(r.field("x-case"));
            switch (outcome) {
                case BAD_GATEWAY -> {
                    assertThat(r.status).as("status").isEqualTo(502);
                    assertThat(fromBackend).as("the proxy's own 502, nothing of the backend's response").isFalse();
                    assertThat(r.complete).as("the 502 is complete").isTrue();
                }
                case CUT -> {
                    if (r.status == 502 && !fromBackend) {
                        assertThat(r.complete).as("the 502 is complete").isTrue();
                    } else {
                        assertThat(fromBackend).as("the backend's head").isTrue();
                        assertThat(r.status).as("status").isEqualTo(status);
                        boolean closeDelimited = http10 && r.field("content-length") == null;
                        // A body delimited by the close (README: what HTTP/1.0 clients get) can only show its cut by
                        // the missing TLS closure alert, which JSSE does not report: BrokenBackendResponseTest's
                        // aCloseDelimitedBodyEndsWithATlsClosureOnlyWhenItIsWhole checks it with a client that can.
                        assertThat(r.complete && !closeDelimited)
                                .as("a body gone bad shows as a connection closed before its end").isFalse();
                        assertThat(startsWith(body, r.body)).as("what arrived of the body is the backend's")
                                .isTrue();
                        assertHopByHopRemoved(r);
                        return false;
                    }
                }
                case RELAYED -> {
                    assertThat(r.complete).as("complete").isTrue();
                    assertThat(fromBackend).as("the response to this request (X-Case " + id + ")").isTrue();
                    assertThat(r.status).as("status").isEqualTo(status);
                    assertThat(new String(r.body, ISO_8859_1)).as("body")
                            .isEqualTo(new String(bodiless() ? new byte[0] : body, ISO_8859_1));
                    assertHopByHopRemoved(r);
                    int at = -1;
                    for (String[] field : fields) {
                        int found = r.indexOf(field[0], field[1], at + 1);
                        assertThat(found).as("field %s: %s relayed, in the backend's order", field[0], field[1])
                                .isGreaterThan(at);
                        at = found;
                    }
                    // README: an HTTP/1.0 client gets the body delimited by the close, which has no trailers.
                    for (String[] trailer : http10 ? List.<String[]>of() : trailers) {
                        assertThat(r.trailers.stream().anyMatch(t -> t[0].equalsIgnoreCase(trailer[0])
                                && t[1].equals(trailer[1]))).as("trailer %s relayed", trailer[0]).isTrue();
                    }
                    for (String[] trailer : r.trailers) {
                        assertThat(Set.of("content-length", "transfer-encoding", "trailer", "connection",
                                "keep-alive", "te", "upgrade")).as("trailer fields that must not be relayed")
                                .doesNotContain(trailer[0].toLowerCase(Locale.ROOT));
                    }
                    if (http10 || early) {
                        // README: HTTP/1.0 clients and early answers close after the response, and say so.
                        assertThat(r.field("connection")).as("Connection").isEqualToIgnoringCase("close");
                    }
                }
                default -> throw new IllegalStateException();
            }
            return r.complete && !"close".equalsIgnoreCase(r.field("connection"));
        }

        private void assertHopByHopRemoved(Received r) {
            for (String[] field : r.fields) {
                String name = field[0].toLowerCase(Locale.ROOT);
                assertThat(hopByHop).as("hop-by-hop or Connection-named field %s relayed", field[0])
                        .doesNotContain(name);
                if (name.equals("connection")) {
                    // The proxy's own "Connection: close" is the only Connection a client may get.
                    assertThat(field[1]).as("Connection").isEqualToIgnoringCase("close");
                }
            }
        }

        /**
         * Waits until the backend wrote its whole script and, when the script ran past its response, until the
         * proxy closed that connection (see the class comment: only then can the next request not be mistaken).
         */
        void awaitBackendDone() throws InterruptedException {
            if (outcome != Outcome.RELAYED || method.equals("POST") && early) {
                // The proxy closed or abandoned the backend connection; the script may be cut short by that.
                return;
            }
            assertThat(written.tryAcquire(5, TimeUnit.SECONDS)).as("the backend wrote its script").isTrue();
            if (leftover) {
                assertThat(connectionEnded.await(5, TimeUnit.SECONDS))
                        .as("the backend connection with bytes past its response was closed, not pooled").isTrue();
            }
        }

        String describe() {
            return method + " " + path() + (http10 ? " HTTP/1.0" : "") + (early ? " (answered early)" : "")
                    + (requestBody != null ? " with " + requestBody.length + " body bytes" : "") + "; mutations "
                    + mutations + "; expected " + outcome + (outcome == Outcome.BAD_GATEWAY ? "" : " " + status)
                    + (leftover ? ", backend connection closed" : "") + "\n  backend wrote, in " + parts.size()
                    + " writes" + (closeAfter ? " then closed" : "") + ": " + escape(script());
        }
    }

    static boolean startsWith(byte[] whole, byte[] prefix) {
        if (prefix.length > whole.length) {
            return false;
        }
        for (int i = 0; i < prefix.length; i++) {
            if (whole[i] != prefix[i]) {
                return false;
            }
        }
        return true;
    }

    static String escape(byte[] bytes) {
        StringBuilder b = new StringBuilder();
        int shown = Math.min(bytes.length, 4000);
        for (int i = 0; i < shown; i++) {
            int c = bytes[i] & 0xff;
            switch (c) {
                case '\r' -> b.append("\\r");
                case '\n' -> b.append("\\n");
                case '\t' -> b.append("\\t");
                case '\\' -> b.append("\\\\");
                default -> b.append(c >= 0x20 && c < 0x7f ? String.valueOf((char) c) : String.format("\\x%02x", c));
            }
        }
        if (shown < bytes.length) {
            b.append("... (").append(bytes.length).append(" bytes)");
        }
        return b.toString();
    }

    // ---- the generator ----------------------------------------------------------------------------------------

    /**
     * Builds a valid response, then mutates it. Each mutation states what it does to the expected outcome; where the
     * proxy makes a choice HTTP leaves open, the comment points at the README line.
     */
    static final class Generator {
        private static final String[] NAMES = {"Content-Type", "Server", "Date", "ETag", "Set-Cookie", "Vary",
            "Cache-Control", "x-odd_name", "X-Trace-Id", "Location", "Via", "Content-Encoding-X"};
        private static final String[] VALUES = {"text/plain", "nginx", "\"v1\"", "a=1; Path=/", "", "max-age=60",
            "caf\u00e9", "x\ty", "a, b, c", "1", "/next?q=1"};
        private static final String[] REASONS = {" OK", "", " ", " Weird  Reason", " caf\u00e9", " OK\t!"};
        private static final int[] STATUSES = {200, 200, 200, 201, 203, 206, 299, 404, 418, 500, 503, 599, 204, 304};

        private final Random random;
        private final String caseId;
        private int next;

        Generator(Random random, String caseId) {
            this.random = random;
            this.caseId = caseId;
        }

        private boolean chance(int percent) {
            return random.nextInt(100) < percent;
        }

        private <T> T pick(T[] values) {
            return values[random.nextInt(values.length)];
        }

        /** A plain response to a GET from a second client: it must get exactly this. */
        Exchange probe() {
            Exchange x = new Exchange(caseId + ".probe", "GET", false, false, null);
            x.status = 200;
            x.body = ("probe " + x.id).getBytes(ISO_8859_1);
            String head = "HTTP/1.1 200 OK\r\nX-Case: " + x.id + "\r\nContent-Length: " + x.body.length + "\r\n\r\n";
            x.parts.add(concat(head.getBytes(ISO_8859_1), x.body));
            x.delays.add(0);
            return x;
        }

        Exchange exchange() {
            String id = caseId + "." + next++;
            int m = random.nextInt(10);
            String method = m < 5 ? "GET" : m < 7 ? "HEAD" : "POST";
            byte[] requestBody = null;
            boolean early = false;
            if (method.equals("POST")) {
                requestBody = bytes(1 + random.nextInt(300));
                early = chance(20);
            }
            boolean http10 = !early && chance(12);
            Exchange x = new Exchange(id, method, http10, early, requestBody);
            build(x);
            return x;
        }

        private byte[] bytes(int n) {
            byte[] b = new byte[n];
            for (int i = 0; i < n; i++) {
                b[i] = (byte) (chance(80) ? 'a' + random.nextInt(26) : random.nextInt(256));
            }
            return b;
        }

        private enum Framing { LENGTH, CHUNKED, CLOSE }

        private void build(Exchange x) {
            boolean backend10 = chance(10);
            x.status = x.method.equals("HEAD") ? pick(new Integer[] {200, 404, 304}) : STATUSES[random.nextInt(
                    STATUSES.length)];
            boolean bodiless = x.bodiless();
            Framing framing = backend10 ? (chance(70) ? Framing.LENGTH : Framing.CLOSE)
                    : pick(new Framing[] {Framing.LENGTH, Framing.LENGTH, Framing.CHUNKED, Framing.CHUNKED,
                        Framing.CLOSE});
            if (bodiless && framing == Framing.CLOSE) {
                framing = Framing.LENGTH;
            }
            int bodyLength = chance(10) ? 0 : chance(5) ? 20_000 + random.nextInt(30_000) : 1 + random.nextInt(400);
            x.body = bytes(bodyLength);
            if (!bodiless) {
                // The id at the start of every body: a body served to the wrong request shows whose it was.
                byte[] tag = ("[" + x.id + "]").getBytes(ISO_8859_1);
                x.body = concat(tag, x.body);
            }

            // ---- the head's fields
            List<String> lines = new ArrayList<>();
            lines.add("X-Case: " + x.id);
            for (int i = random.nextInt(5); i > 0; i--) {
                String name = pick(NAMES);
                String value = pick(VALUES);
                String spaced = pick(new String[] {": ", ":", ":\t", ":  "}) + value
                        + pick(new String[] {"", "", " ", "\t "});
                lines.add(random.nextInt(lines.size() + 1), name + spaced);
            }
            boolean keepAlive10 = backend10 && chance(60);
            if (keepAlive10) {
                lines.add("Connection: keep-alive");
            }
            if (chance(30)) {
                String hop = "X-Hop-" + random.nextInt(100);
                lines.add("Connection: " + pick(new String[] {"", "keep-alive, ", "Close-Not, "}) + hop);
                lines.add(random.nextInt(lines.size()), pick(new String[] {hop, hop.toLowerCase(Locale.ROOT),
                    hop.toUpperCase(Locale.ROOT)}) + ": backend-only");
                x.hopByHop.add(hop.toLowerCase(Locale.ROOT));
                x.hopByHop.add("close-not");
            }
            if (chance(10)) {
                // A field the head would otherwise relay, named in Connection: it is hop-by-hop now.
                String named = pick(new String[] {"Date", "Host", "Server", "Set-Cookie", "Via"});
                lines.add(random.nextInt(lines.size() + 1), named + ": named-by-connection");
                lines.add(random.nextInt(lines.size() + 1), "Connection: " + named.toLowerCase(Locale.ROOT));
                x.hopByHop.add(named.toLowerCase(Locale.ROOT));
            }
            if (chance(5)) {
                // Naming a framing field does not unframe the message: whatever the client gets must still be
                // framed strictly, which the reader checks.
                lines.add(random.nextInt(lines.size() + 1), "Connection: Content-Length, Transfer-Encoding");
            }
            if (chance(20)) {
                lines.add(pick(new String[] {"Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
                    "TE: trailers", "Upgrade: h2c", "Proxy-Authenticate: Basic", "Trailer: X-Checksum"}));
            }
            boolean backendCloses = false;
            if (chance(8)) {
                lines.add("Connection: close");
                backendCloses = true;
            }
            // recompute the end-to-end fields from the lines, in order
            x.fields.clear();
            for (String line : lines) {
                int colon = line.indexOf(':');
                String name = line.substring(0, colon);
                String lower = name.toLowerCase(Locale.ROOT);
                if (!x.hopByHop.contains(lower) && !lower.equals("connection")) {
                    x.fields.add(new String[] {name, line.substring(colon + 1).strip()});
                }
            }
            String statusLine = (backend10 ? "HTTP/1.0 " : "HTTP/1.1 ") + x.status + pick(REASONS);

            // ---- framing and body
            byte[] bodyBytes;
            String framingLine = null;
            if (framing == Framing.LENGTH) {
                long announced = bodiless && x.method.equals("HEAD") ? x.body.length : bodiless ? 0 : x.body.length;
                framingLine = "Content-Length: " + (chance(5) ? "00" : "") + announced;
                bodyBytes = bodiless ? new byte[0] : x.body;
            } else if (framing == Framing.CHUNKED) {
                framingLine = "Transfer-Encoding: " + pick(new String[] {"chunked", "chunked", "Chunked", " chunked ",
                    "CHUNKED"});
                bodyBytes = bodiless ? new byte[0] : chunked(x, x.body);
            } else {
                bodyBytes = x.body;
                backendCloses = true; // the close ends the body
            }
            if (x.status == 204 && framing == Framing.CHUNKED) {
                framingLine = null; // nothing to say about a body a 204 cannot have
            }
            if (framingLine != null) {
                lines.add(random.nextInt(lines.size() + 1), framingLine);
            }

            // ---- interim responses before the final one (README: interim 1xx dropped)
            ByteArrayOutputStream interim = new ByteArrayOutputStream();
            if (chance(12)) {
                for (int i = chance(20) ? 20 + random.nextInt(30) : 1 + random.nextInt(3); i > 0; i--) {
                    interim.writeBytes(pick(new String[] {"HTTP/1.1 100 Continue\r\n\r\n",
                        "HTTP/1.1 102 Processing\r\n\r\n",
                        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                        "HTTP/1.1 103 Early Hints\r\nX-Case: interim\r\n\r\n"}).getBytes(ISO_8859_1));
                }
                x.mutations.add("interim 1xx");
            }
            if (chance(4)) {
                // A large head still under the decoder's 64 KiB limit relays as any other.
                lines.add("X-Large: " + "l".repeat(40_000 + random.nextInt(20_000)));
                x.fields.add(new String[] {"X-Large", lines.get(lines.size() - 1).substring(9)});
                x.mutations.add("large head");
            }
            if (chance(4)) {
                // README/decoder: empty lines before a status line are skipped, as Netty's decoder and browsers do.
                interim.writeBytes("\r\n".getBytes(ISO_8859_1));
                x.mutations.add("empty line before the status line");
            }

            Response r = new Response(interim.toByteArray(), statusLine, lines, bodyBytes, framing, backend10);
            x.closeAfter = backendCloses;
            int kind = random.nextInt(100);
            if (kind < 30) {
                mutateHead(x, r);
            } else if (kind < 45 && !bodiless && framing != Framing.CLOSE && x.body.length > 0) {
                mutateBody(x, r);
            } else if (kind < 60 && framing != Framing.CLOSE && !backendCloses) {
                extraBytes(x, r);
            } else if (kind < 66) {
                closeAtRandomPoint(x, r, framing, bodiless);
            }
            if (x.outcome != Outcome.RELAYED) {
                x.closeAfter = true;
            }
            if (backend10 && !keepAlive10 || backendCloses) {
                x.leftover = false; // the proxy closes it anyway: nothing to check
            }
            if (x.leftover && new String(r.extra, ISO_8859_1).matches("[\\r\\n]*")) {
                // Decoder: empty lines before a status line are skipped, so CR and LF alone are not a leftover.
                x.leftover = false;
            }
            // A body going bad after a pause: the head and the first part reach the client before the failure.
            int pauseAt = x.outcome == Outcome.CUT && chance(50)
                    ? r.bytes().length - r.body.length + random.nextInt(Math.min(r.body.length, 64) + 1) : -1;
            split(x, r.bytes(), r.extraApart ? r.extra : null, pauseAt);
        }

        /** The body as chunks of random sizes, with size lines spelled in the ways RFC 9112 allows, and trailers. */
        private byte[] chunked(Exchange x, byte[] body) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            int at = 0;
            while (at < body.length) {
                int size = Math.min(body.length - at, 1 + random.nextInt(chance(20) ? 20_000 : 120));
                String hex = Integer.toHexString(size);
                hex = chance(20) ? hex.toUpperCase(Locale.ROOT) : hex;
                hex = chance(10) ? "000".substring(0, 1 + random.nextInt(3)) + hex : hex;
                String ext = pick(new String[] {"", "", "", ";name=value", ";a", " ;a=\"q ;\"", "\t;x=1;y"});
                out.writeBytes((hex + ext + "\r\n").getBytes(ISO_8859_1));
                out.write(body, at, size);
                out.writeBytes("\r\n".getBytes(ISO_8859_1));
                at += size;
            }
            out.writeBytes(("0" + (chance(10) ? ";end" : "") + "\r\n").getBytes(ISO_8859_1));
            if (chance(25)) {
                out.writeBytes("X-Checksum: c0ffee\r\n".getBytes(ISO_8859_1));
                x.trailers.add(new String[] {"X-Checksum", "c0ffee"});
                if (chance(50)) {
                    // RFC 9110 6.5.1: framing fields have no place in a trailer; the decoder drops them there.
                    out.writeBytes(pick(new String[] {"Content-Length: 99\r\n", "Transfer-Encoding: chunked\r\n",
                        "Trailer: X-Checksum\r\n", "Connection: close\r\n", "Keep-Alive: 1\r\n"})
                            .getBytes(ISO_8859_1));
                    x.mutations.add("forbidden trailer field");
                }
            }
            out.writeBytes("\r\n".getBytes(ISO_8859_1));
            return out.toByteArray();
        }

        /** A head the client could read differently from the proxy, or not at all: 502, nothing relayed. */
        private void mutateHead(Exchange x, Response r) {
            x.outcome = Outcome.BAD_GATEWAY;
            int which = random.nextInt(22);
            String m;
            switch (which) {
                case 0 -> {
                    m = "version " + (r.statusLine = pick(new String[] {"HTTP/1.2", "HTTP/2.0", "HTTP/1.10",
                        "http/1.1", "HTTP/1", "HTTP/0.9", " HTTP/1.1"}) + r.statusLine.substring(8));
                }
                case 1 -> {
                    String code = pick(new String[] {"20", "2000", "0200", "2x0", "099", "000", "20 0", "-200"});
                    m = "status code " + code;
                    r.statusLine = r.statusLine.substring(0, 9) + code + r.statusLine.substring(12);
                }
                case 2 -> {
                    m = "spaces around the code";
                    r.statusLine = r.statusLine.substring(0, 8) + pick(new String[] {"  ", "\t", " \t"})
                            + r.statusLine.substring(9);
                }
                case 3 -> {
                    String value = pick(new String[] {"5, 5", "+5", "-1", "0x5", "5 5", "", "1e3",
                        "99999999999999999999", "5;q"});
                    m = "Content-Length: " + value;
                    r.replaceFraming("Content-Length: " + value);
                }
                case 4 -> {
                    m = "two Content-Lengths";
                    r.replaceFraming("Content-Length: " + x.body.length);
                    r.lines.add(random.nextInt(r.lines.size() + 1), "content-length: " + (chance(50)
                            ? x.body.length : x.body.length + 1));
                    // README (ambiguous framing is a 502): even two equal values are refused, as RFC 9112 6.3
                    // allows, rather than repaired.
                }
                case 5 -> {
                    m = "Content-Length with Transfer-Encoding";
                    r.lines.add(random.nextInt(r.lines.size() + 1), "Content-Length: " + x.body.length);
                    r.lines.add(random.nextInt(r.lines.size() + 1), "Transfer-Encoding: chunked");
                }
                case 6 -> {
                    // Decoder: Transfer-Encoding other than exactly chunked is refused (as nginx does).
                    String te = pick(new String[] {"gzip, chunked", "chunked, chunked", "identity", "chunked;q=1",
                        "gzip", "chunked, identity", "x"});
                    m = "Transfer-Encoding: " + te;
                    r.replaceFraming("Transfer-Encoding: " + te);
                }
                case 7 -> {
                    m = "two Transfer-Encoding fields";
                    r.replaceFraming("Transfer-Encoding: chunked");
                    r.lines.add("Transfer-Encoding: chunked");
                }
                case 8 -> {
                    m = "obs-fold";
                    int at = random.nextInt(r.lines.size());
                    r.lines.set(at, r.lines.get(at) + "\r\n" + pick(new String[] {" ", "\t", "  "}) + "folded");
                }
                case 9 -> {
                    m = "whitespace before a colon";
                    int at = random.nextInt(r.lines.size());
                    String line = r.lines.get(at);
                    int colon = line.indexOf(':');
                    r.lines.set(at, line.substring(0, colon) + pick(new String[] {" ", "\t"}) + line.substring(colon));
                }
                case 10 -> {
                    m = "bare LF";
                    r.bareLf = 1 + random.nextInt(r.lines.size() + 2);
                }
                case 11 -> {
                    String bad = pick(new String[] {"\r", "\u0000", "\u0001", "\u007f", "\u001b", "\u000b", "\n"});
                    m = "control byte " + escape(bad.getBytes(ISO_8859_1)) + " in a value";
                    int at = random.nextInt(r.lines.size());
                    String line = r.lines.get(at);
                    int pos = line.indexOf(':') + 1 + random.nextInt(line.length() - line.indexOf(':'));
                    r.lines.set(at, line.substring(0, pos) + bad + "x" + line.substring(pos));
                }
                case 12 -> {
                    m = "head over 64 KiB";
                    r.lines.add("X-Huge: " + "h".repeat(66_000 + random.nextInt(10_000)));
                }
                case 13 -> {
                    String name = pick(new String[] {"X(A)", "", "X A", "X\"A", "X@A", "\u00e9t\u00e9", "X/A"});
                    m = "field name '" + name + "'";
                    r.lines.add(random.nextInt(r.lines.size() + 1), name + ": v");
                }
                case 14 -> {
                    // README: 101 is accepted only in answer to a WebSocket upgrade; these requests ask for none.
                    m = "101 unasked";
                    r.interim = concat(r.interim, pick(new String[] {"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"})
                            .getBytes(ISO_8859_1));
                }
                case 15 -> {
                    m = "malformed interim response";
                    r.interim = concat(r.interim, pick(new String[] {"HTTP/1.1 103 Early Hints\r\nLink : x\r\n\r\n",
                        "HTTP/1.1 100 Continue\n\r\n", "HTTP/1.1 1000 Continue\r\n\r\n",
                        "HTTP/1.1 100 Continue\r\n X: folded\r\n\r\n"}).getBytes(ISO_8859_1));
                }
                case 16 -> {
                    if (!r.backend10 && r.framing == Framing.CHUNKED) {
                        // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is badly framed.
                        m = "chunked in an HTTP/1.0 response";
                        r.statusLine = "HTTP/1.0" + r.statusLine.substring(8);
                    } else {
                        m = "HTTP/1.0 with Transfer-Encoding";
                        r.statusLine = "HTTP/1.0" + r.statusLine.substring(8);
                        r.replaceFraming("Transfer-Encoding: chunked");
                    }
                }
                case 17 -> {
                    m = "garbage instead of a response";
                    r.statusLine = pick(new String[] {"SSH-2.0-OpenSSH_9.6", "<html>", "\u0016\u0003\u0001\u0002",
                        "HTTP/1.1", "ICY 200 OK"});
                }
                case 18 -> {
                    m = "NUL in the status line";
                    r.statusLine = r.statusLine + "\u0000";
                }
                case 19 -> {
                    m = "bare CR ending a line";
                    int at = random.nextInt(r.lines.size());
                    r.lines.set(at, r.lines.get(at) + "\rX-After-Cr: 1");
                }
                case 20 -> {
                    m = "a field line without a colon";
                    r.lines.add(random.nextInt(r.lines.size() + 1), "NoColonHere");
                }
                default -> {
                    m = "Content-Length beside Transfer-Encoding in another case";
                    r.replaceFraming("transfer-encoding: chunked");
                    r.lines.add("CONTENT-LENGTH: 0");
                }
            }
            x.mutations.add(m);
        }

        /** A body that goes bad after the head is fine: a 502 while nothing went out, else a close. */
        private void mutateBody(Exchange x, Response r) {
            x.outcome = Outcome.CUT;
            int which = r.framing == Framing.CHUNKED ? random.nextInt(9) : 0;
            String m;
            byte[] body = r.body;
            switch (which) {
                case 0 -> {
                    int keep = random.nextInt(body.length);
                    m = "body cut after " + keep + " of " + body.length + " bytes";
                    r.body = java.util.Arrays.copyOf(body, keep);
                }
                case 1 -> {
                    m = "chunk size overflow";
                    r.body = replaceFirstChunkLine(body, pick(new String[] {"10000000000000000", "ffffffffffffffffff",
                        "7fffffffffffffff1", "100000000000000000000000000000005"}));
                }
                case 2 -> {
                    String size = pick(new String[] {"zz", "-5", "0x5", " 5", "", "5 5", "+5"});
                    m = "chunk size '" + size + "'";
                    r.body = replaceFirstChunkLine(body, size);
                }
                case 3 -> {
                    m = "chunk data not followed by CRLF";
                    String text = new String(body, ISO_8859_1);
                    int line = text.indexOf("\r\n");
                    int size = Integer.parseInt(text.substring(0, line).split("[; \t]")[0], 16);
                    int end = line + 2 + size;
                    r.body = (text.substring(0, end) + pick(new String[] {"XX", "\n", "\r", ""})
                            + text.substring(end + 2)).getBytes(ISO_8859_1);
                }
                case 4 -> {
                    m = "chunk size line ending in a bare LF";
                    String text = new String(body, ISO_8859_1);
                    int line = text.indexOf("\r\n");
                    r.body = (text.substring(0, line) + "\n" + text.substring(line + 2)).getBytes(ISO_8859_1);
                }
                case 5 -> {
                    m = "control byte in a chunk extension";
                    String text = new String(body, ISO_8859_1);
                    int line = text.indexOf("\r\n");
                    r.body = (text.substring(0, line) + pick(new String[] {";a\u0000", ";\u0001", ";x=\u007f"})
                            + text.substring(line)).getBytes(ISO_8859_1);
                }
                case 6 -> {
                    m = "malformed trailer";
                    String text = new String(body, ISO_8859_1);
                    r.body = (text.substring(0, text.length() - 2) + pick(new String[] {"X-T : 1\r\n",
                        "X-T: a\u0000\r\n", " folded\r\n", "X-T: 1\n", "NoColon\r\n"}) + "\r\n")
                            .getBytes(ISO_8859_1);
                    x.trailers.clear();
                }
                case 7 -> {
                    m = "chunked body cut before its last chunk";
                    String text = new String(body, ISO_8859_1);
                    int last = text.lastIndexOf("\r\n0");
                    r.body = text.substring(0, last + 2 - (last + 2 > 0 && chance(50) ? 2 : 0))
                            .getBytes(ISO_8859_1);
                }
                default -> {
                    m = "chunk size line too long";
                    String text = new String(body, ISO_8859_1);
                    int line = text.indexOf("\r\n");
                    r.body = (text.substring(0, line) + ";" + "e".repeat(5000) + text.substring(line))
                            .getBytes(ISO_8859_1);
                }
            }
            x.mutations.add(m);
        }

        private static byte[] replaceFirstChunkLine(byte[] body, String size) {
            String text = new String(body, ISO_8859_1);
            int line = text.indexOf("\r\n");
            return (size + text.substring(line)).getBytes(ISO_8859_1);
        }

        /**
         * A complete response followed by more bytes: a body longer than its length, anything after a chunked end
         * or after a HEAD, 204 or 304 (README: the connection is closed, as in nginx). The client gets the response;
         * the extra bytes reach nobody.
         */
        private void extraBytes(Exchange x, Response r) {
            String smuggled = "HTTP/1.1 200 OK\r\nX-Case: SMUGGLED\r\nContent-Length: 8\r\n\r\nSMUGGLED";
            String extra = pick(new String[] {smuggled, "\r\n" + smuggled, "SMUGGLED", " world", "\u0000\u0000",
                "0\r\n\r\n", smuggled + smuggled});
            if (x.bodiless() && chance(50)) {
                extra = new String(x.body.length == 0 ? "SMUGGLED".getBytes(ISO_8859_1) : x.body, ISO_8859_1);
            }
            r.extra = extra.getBytes(ISO_8859_1);
            r.extraApart = chance(40);
            x.leftover = true;
            x.mutations.add("bytes past the response" + (r.extraApart ? ", written later" : ""));
        }

        /** The backend closes at a random byte of its script; what that means depends on where the byte is. */
        private void closeAtRandomPoint(Exchange x, Response r, Framing framing, boolean bodiless) {
            byte[] all = r.bytes();
            int headEnd = all.length - r.body.length;
            int at = random.nextInt(all.length + 1);
            x.mutations.add("closed after " + at + " of " + all.length + " bytes");
            r.cutAt = at;
            x.closeAfter = true;
            if (at < headEnd) {
                // Before the final head ended: nothing to relay. (A GET or HEAD is sent once more on a new
                // connection, README "closed before answering"; the script is the same, so is the outcome.)
                x.outcome = Outcome.BAD_GATEWAY;
            } else if (bodiless || at == all.length) {
                x.outcome = Outcome.RELAYED;
            } else if (framing == Framing.CLOSE) {
                // A close-delimited body ends where the connection does: whatever came is the whole body.
                x.body = java.util.Arrays.copyOf(x.body, at - headEnd);
            } else {
                x.outcome = Outcome.CUT;
            }
        }

        /**
         * The script's writes: split at random boundaries, sometimes a byte at a time, with pauses between; bytes
         * past the response, when apart, in a write of their own after a pause.
         */
        private void split(Exchange x, byte[] all, byte[] apart, int pauseAt) {
            List<Integer> cuts = new ArrayList<>();
            if (pauseAt >= 0) {
                cuts.add(Math.min(pauseAt, all.length));
            }
            if (chance(40)) {
                for (int i = random.nextInt(chance(20) ? 12 : 4); i > 0; i--) {
                    cuts.add(random.nextInt(all.length + 1));
                }
            }
            cuts.sort(null);
            int from = 0;
            for (int cut : cuts) {
                if (cut > from) {
                    x.parts.add(java.util.Arrays.copyOfRange(all, from, cut));
                    x.delays.add(cut == pauseAt ? 30 : random.nextInt(8));
                    from = cut;
                }
            }
            x.parts.add(java.util.Arrays.copyOfRange(all, from, all.length));
            x.delays.add(apart == null ? 0 : 20);
            if (apart != null) {
                x.parts.add(apart);
                x.delays.add(0);
            }
        }

        /** The final response as lines, so that mutations can change a part of it before it becomes bytes. */
        final class Response {
            byte[] interim;
            String statusLine;
            final List<String> lines;
            byte[] body;
            final Framing framing;
            final boolean backend10;
            byte[] extra = new byte[0];
            boolean extraApart;
            /** Which line ending of the head (1 = the status line's) becomes a bare LF; 0 for none. */
            int bareLf;
            int cutAt = -1;

            Response(byte[] interim, String statusLine, List<String> lines, byte[] body, Framing framing,
                    boolean backend10) {
                this.interim = interim;
                this.statusLine = statusLine;
                this.lines = lines;
                this.body = body;
                this.framing = framing;
                this.backend10 = backend10;
            }

            void replaceFraming(String line) {
                lines.removeIf(l -> l.regionMatches(true, 0, "Content-Length:", 0, 15)
                        || l.regionMatches(true, 0, "Transfer-Encoding:", 0, 18));
                lines.add(random.nextInt(lines.size() + 1), line);
            }

            byte[] bytes() {
                StringBuilder head = new StringBuilder();
                List<String> all = new ArrayList<>();
                all.add(statusLine);
                all.addAll(lines);
                all.add("");
                for (int i = 0; i < all.size(); i++) {
                    head.append(all.get(i)).append(bareLf == i + 1 ? "\n" : "\r\n");
                }
                byte[] whole = concat(interim, head.toString().getBytes(ISO_8859_1), body);
                if (cutAt >= 0) {
                    return java.util.Arrays.copyOf(whole, Math.min(cutAt, whole.length));
                }
                return extraApart ? whole : concat(whole, extra);
            }
        }
    }

    static byte[] concat(byte[]... arrays) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] a : arrays) {
            out.writeBytes(a);
        }
        return out.toByteArray();
    }

    // ---- the client's strict reader ---------------------------------------------------------------------------

    /** A response as the client read it; {@code complete} is false when the connection ended before its framing. */
    static final class Received {
        int status = -1;
        String statusLine;
        final List<String[]> fields = new ArrayList<>();
        final List<String[]> trailers = new ArrayList<>();
        byte[] body = new byte[0];
        boolean complete;
        final ByteArrayOutputStream raw = new ByteArrayOutputStream();

        String field(String name) {
            for (String[] f : fields) {
                if (f[0].equalsIgnoreCase(name)) {
                    return f[1];
                }
            }
            return null;
        }

        int indexOf(String name, String value, int from) {
            for (int i = from; i < fields.size(); i++) {
                if (fields.get(i)[0].equalsIgnoreCase(name) && fields.get(i)[1].equals(value)) {
                    return i;
                }
            }
            return -1;
        }

        @Override
        public String toString() {
            return (complete ? "" : "(cut) ") + escape(raw.toByteArray());
        }
    }

    /**
     * RFC 9112 read strictly, independent of the proxy's code: anything ambiguous is an assertion failure, not
     * something to repair. Reads one response; null when the connection ends before its first byte.
     */
    static final class StrictResponseReader {
        private final InputStream in;
        private Received r;
        /** The connection ended without a clean TLS closure. */
        private boolean abortive;

        StrictResponseReader(InputStream in) {
            this.in = in;
        }

        Received read(boolean head, boolean http10) throws IOException {
            r = new Received();
            try {
                readResponse(head, http10);
                r.complete = true;
            } catch (Closed closed) {
                if (r.raw.size() == 0) {
                    return null;
                }
            }
            return r;
        }

        private void readResponse(boolean head, boolean http10) throws IOException {
            String statusLine = line();
            r.statusLine = statusLine;
            if (!statusLine.matches("HTTP/1\\.1 [1-9][0-9][0-9]( [\\t\\x20-\\x7e\\x80-\\xff]*)?")) {
                throw malformed("status line");
            }
            r.status = Integer.parseInt(statusLine.substring(9, 12));
            if (r.status < 200) {
                // The client sent no Expect and no Upgrade: README, interim responses are the proxy's own or dropped.
                throw malformed("an interim response nobody asked for");
            }
            fields(r.fields);
            List<String> lengths = values("content-length");
            List<String> codings = values("transfer-encoding");
            if (!lengths.isEmpty() && !codings.isEmpty()) {
                throw malformed("both Content-Length and Transfer-Encoding");
            }
            if (lengths.size() > 1 || codings.size() > 1) {
                throw malformed("more than one framing field");
            }
            if (!lengths.isEmpty() && !lengths.get(0).matches("[0-9]{1,18}")) {
                throw malformed("Content-Length");
            }
            if (!codings.isEmpty() && (!codings.get(0).equalsIgnoreCase("chunked") || http10)) {
                throw malformed("Transfer-Encoding other than chunked, or any to an HTTP/1.0 client");
            }
            if (head || r.status == 204 || r.status == 304) {
                return;
            }
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            try {
                if (!codings.isEmpty()) {
                    chunked(body);
                } else if (!lengths.isEmpty()) {
                    fixed(body, Long.parseLong(lengths.get(0)));
                } else {
                    // README: HTTP/1.0 clients get close-delimited bodies; a 1.1 client always gets a framed one.
                    if (!http10 || !"close".equalsIgnoreCase(r.field("connection"))) {
                        throw malformed("a close-delimited body to a keep-alive client");
                    }
                    int b;
                    while ((b = readByte(true)) >= 0) {
                        body.write(b);
                    }
                    if (abortive) {
                        // RFC 9112 9.8: a body delimited by the close is complete only if the close was a clean
                        // TLS closure (close_notify); a connection that just ends cut it short.
                        throw new Closed();
                    }
                }
            } finally {
                r.body = body.toByteArray();
            }
        }

        private List<String> values(String name) {
            List<String> values = new ArrayList<>();
            for (String[] f : r.fields) {
                if (f[0].equalsIgnoreCase(name)) {
                    values.add(f[1]);
                }
            }
            return values;
        }

        private void fields(List<String[]> into) throws IOException {
            String line;
            while (!(line = line()).isEmpty()) {
                if (line.charAt(0) == ' ' || line.charAt(0) == '\t') {
                    throw malformed("obs-fold");
                }
                int colon = line.indexOf(':');
                if (colon <= 0 || !line.substring(0, colon).matches("[!#$%&'*+\\-.^_`|~0-9A-Za-z]+")) {
                    throw malformed("field name");
                }
                String value = line.substring(colon + 1);
                for (char ch : value.toCharArray()) {
                    if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
                        throw malformed("control character in a field value");
                    }
                }
                into.add(new String[] {line.substring(0, colon), value.strip()});
            }
        }

        private void chunked(ByteArrayOutputStream body) throws IOException {
            while (true) {
                String line = line();
                int end = 0;
                while (end < line.length() && Character.digit(line.charAt(end), 16) >= 0) {
                    end++;
                }
                if (end == 0 || end > 15) {
                    throw malformed("chunk size");
                }
                String rest = line.substring(end);
                if (!rest.isEmpty() && !rest.matches("[ \\t]*;[\\t\\x20-\\x7e\\x80-\\xff]*")) {
                    throw malformed("chunk extension");
                }
                long size = Long.parseLong(line.substring(0, end), 16);
                if (size == 0) {
                    fields(r.trailers);
                    return;
                }
                fixed(body, size);
                if (readByte(false) != '\r' || readByte(false) != '\n') {
                    throw malformed("chunk not followed by CRLF");
                }
            }
        }

        private void fixed(ByteArrayOutputStream body, long length) throws IOException {
            for (long i = 0; i < length; i++) {
                body.write(readByte(false));
            }
        }

        /** A line without its CRLF; a bare CR or LF, or a NUL, is malformed. */
        private String line() throws IOException {
            StringBuilder b = new StringBuilder();
            while (true) {
                int c = readByte(false);
                if (c == '\r') {
                    if (readByte(false) != '\n') {
                        throw malformed("bare CR");
                    }
                    return b.toString();
                }
                if (c == '\n') {
                    throw malformed("bare LF");
                }
                if (c == 0) {
                    throw malformed("NUL");
                }
                if (b.length() > 128 * 1024) {
                    throw malformed("line over 128 KiB");
                }
                b.append((char) c);
            }
        }

        /** The next byte; at the end of the stream -1 when {@code endAllowed}, else {@link Closed}. */
        private int readByte(boolean endAllowed) throws IOException {
            int c;
            try {
                c = in.read();
            } catch (SocketTimeoutException e) {
                throw new AssertionError("no byte from the proxy within the read timeout (a timeout is never a "
                        + "pass); received so far: " + r, e);
            } catch (IOException reset) {
                c = -1; // reset, or an end without close_notify: the connection's end, but not a clean one
                abortive = true;
            }
            if (c < 0) {
                if (endAllowed) {
                    return -1;
                }
                throw new Closed();
            }
            r.raw.write(c);
            return c;
        }

        private AssertionError malformed(String what) {
            return new AssertionError("not strictly framed (" + what + "): " + r);
        }

        private static final class Closed extends IOException {
            private static final long serialVersionUID = 1L;

            Closed() {
                super("connection closed");
            }
        }
    }

    // ---- the backend ------------------------------------------------------------------------------------------

    /**
     * A keep-alive backend on a raw socket: reads each request (head and body), looks up the script of its path,
     * writes its parts with the pauses between them, and closes when the script says so. A path without a script
     * gets a 404.
     */
    static final class ScriptedBackend implements AutoCloseable {
        private final ServerSocket socket;
        private final Map<String, Exchange> scripts = new ConcurrentHashMap<>();

        private ScriptedBackend(ServerSocket socket) {
            this.socket = socket;
            Thread acceptor = new Thread(this::accept, "fuzz-backend");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        static ScriptedBackend start() throws IOException {
            return new ScriptedBackend(new ServerSocket(0, 50, InetAddress.getLoopbackAddress()));
        }

        String url() {
            return "http://127.0.0.1:" + socket.getLocalPort();
        }

        void register(Exchange exchange) {
            scripts.put(exchange.path(), exchange);
        }

        private void accept() {
            while (!socket.isClosed()) {
                try {
                    Socket connection = socket.accept();
                    Thread serving = new Thread(() -> serve(connection), "fuzz-backend-connection");
                    serving.setDaemon(true);
                    serving.start();
                } catch (IOException e) {
                    return; // closed by the test
                }
            }
        }

        private void serve(Socket connection) {
            Exchange last = null;
            try (connection) {
                connection.setSoTimeout(30_000);
                connection.setTcpNoDelay(true);
                InputStream in = connection.getInputStream();
                OutputStream out = connection.getOutputStream();
                while (true) {
                    String head = SocketBackend.readHead(in);
                    if (head == null) {
                        return;
                    }
                    String path = head.split(" ", 3)[1];
                    Exchange x = scripts.get(path);
                    last = x;
                    if (x == null) {
                        readBody(in, head);
                        out.write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".getBytes(ISO_8859_1));
                        out.flush();
                        continue;
                    }
                    if (!x.early) {
                        readBody(in, head);
                    }
                    for (int i = 0; i < x.parts.size(); i++) {
                        out.write(x.parts.get(i));
                        out.flush();
                        if (x.delays.get(i) > 0) {
                            Thread.sleep(x.delays.get(i));
                        }
                    }
                    if (x.closeAfter) {
                        // Released once closed (below), so that the next request does not race the close to a
                        // connection the proxy would reuse: only a GET or HEAD may be sent again on a new one.
                        return;
                    }
                    x.written.release();
                    if (x.early) {
                        readBody(in, head);
                    }
                }
            } catch (IOException | InterruptedException e) {
                // the proxy closed the connection
            } finally {
                if (last != null) {
                    // A script cut short because the proxy closed the connection is as written as it will be.
                    last.written.release();
                    last.connectionEnded.countDown();
                }
            }
        }

        private static void readBody(InputStream in, String head) throws IOException {
            long length = 0;
            for (String line : head.split("\r\n")) {
                if (line.regionMatches(true, 0, "content-length:", 0, 15)) {
                    length = Long.parseLong(line.substring(15).trim());
                }
            }
            for (long i = 0; i < length; i++) {
                if (in.read() < 0) {
                    throw new IOException("request body cut");
                }
            }
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }
}
