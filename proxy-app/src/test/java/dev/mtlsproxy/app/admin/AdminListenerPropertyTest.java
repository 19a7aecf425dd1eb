package dev.mtlsproxy.app.admin;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.proxy.TlsInventory;
import dev.mtlsproxy.core.testing.BufferLeaks;
import dev.mtlsproxy.core.testing.LogCapture;
import io.micrometer.core.instrument.Counter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.util.ResourceLeakDetector;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import org.awaitility.Awaitility;
import org.awaitility.core.ConditionFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The admin listener's HTTP handling as clients on the wire meet it, generated from one seed and judged by a model of
 * the README's promises that shares no code with the listener.
 *
 * <p>Conversations: a connection carries a few requests (every endpoint with the methods it takes and others,
 * unknown paths and methods, HTTP/1.0 and 1.1, keep-alive and close, bodies framed by Content-Length and chunked,
 * {@code Expect: 100-continue}, bodies over the 8 KiB cap, malformed heads, a head over its cap, garbage), written
 * pipelined or one at a time, cut at random byte boundaries with short pauses. Each answer is checked in order:
 * status, {@code Connection}, {@code Allow}, body (none for HEAD), and the connection closes exactly after the answer
 * the model says ends it, with nothing acted on after it. A conversation ends with a request that closes, silence
 * after an answer (the idle timeout closes it), or a request cut short (the request timeout closes it, and counts it).
 * Several conversations run at once.
 *
 * <p>Slots: with the real cap of 64, connections are opened, kept idle, left mid-request or waiting for a reload,
 * and new ones arrive; the model says which connection is closed to make room (the one idle longest) or that the new
 * one is refused, and every connection it says is open is served at the end.
 *
 * <p>Counters are read from {@code /metrics} as Prometheus reads them, and no buffer may leak. The seed is printed
 * with every failure; {@code -Dmtlsproxy.test.seed=N} replays it and {@code -Dmtlsproxy.test.seed=random} draws one.
 */
class AdminListenerPropertyTest {

    static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    /** Scaled down from 10 s and 2 min so a conversation that waits for one takes a second or two. */
    static final Duration REQUEST_TIMEOUT = Duration.ofMillis(1500);
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(3);
    /** The aggregator's cap on a request body (AdminServer). */
    static final int MAX_BODY = 8 * 1024;
    static final int CONVERSATIONS = 120;
    static final int AT_ONCE = 10;

    static final List<String> READ_ONLY = List.of("/metrics", "/healthz", "/readyz", "/admin/certs", "/admin/config");
    static final List<String> UNKNOWN = List.of("/", "/nowhere", "/admin", "/healthz/", "/HEALTHZ", "/metrics.txt",
            "/admin/reload/x", "*");
    static final List<String> METHODS = List.of("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "FROB");
    static final Pattern RELOADED = Pattern.compile(
            "\\{\\s*\"result\" : \"success\",\\s*\"generation\" : \\d+,\\s*\"restartNeeded\" : \\[ ]\\s*}\n");

    /** What the model says one request gets. */
    record Expected(int status, String body, Pattern bodyPattern, String allow, String connection, boolean closes,
            boolean reloads) {
    }

    /**
     * One request as written; {@code whole} when it must reach the server in one write (a request the server refuses
     * before its end: closing while the client still writes would reset what it has not read yet).
     */
    record Request(String what, byte[] bytes, boolean head, boolean whole, Expected expected) {
    }

    enum Delivery { PIPELINED, ONE_BY_ONE }

    enum Ending { CLOSING_REQUEST, IDLE, CUT_SHORT, SILENT }

    record Conversation(int index, Delivery delivery, List<Request> requests, Ending ending, byte[] cutShort,
            Request afterClose) {
    }

    /** A response as read off the wire. */
    record Response(int status, Map<String, String> headers, String body, int interim) {
    }

    @Test
    @Timeout(120)
    void generatedConversationsAreAnsweredAndClosedAsTheModelSays() throws Exception {
        Random random = new Random(SEED);
        List<Conversation> conversations = new ArrayList<>();
        for (int i = 0; i < CONVERSATIONS; i++) {
            conversations.add(conversation(i, new Random(random.nextLong())));
        }
        AtomicInteger reloadsRun = new AtomicInteger();
        AdminEndpoints.Reloader reloader = trigger -> {
            reloadsRun.incrementAndGet();
            // Finished a little later on another thread, so answers behind a reload wait for it.
            return CompletableFuture.supplyAsync(() -> new ReloadOutcome(true, 2, null, List.of()),
                    CompletableFuture.delayedExecutor(ThreadLocalRandom.current().nextInt(20), TimeUnit.MILLISECONDS));
        };
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        ProxyMetrics metrics = new ProxyMetrics(registry);
        try (LogCapture leaks = LogCapture.of(ResourceLeakDetector.class)) {
            try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(registry, reloader),
                    new AdminServer.Limits(IDLE_TIMEOUT, REQUEST_TIMEOUT, 64), counters(metrics))) {
                ExecutorService clients = Executors.newFixedThreadPool(AT_ONCE);
                try {
                    List<Future<?>> running = new ArrayList<>();
                    for (Conversation c : conversations) {
                        running.add(clients.submit(() -> {
                            hold(server, c);
                            return null;
                        }));
                    }
                    for (Future<?> f : running) {
                        f.get(100, TimeUnit.SECONDS);
                    }
                } finally {
                    clients.shutdownNow();
                }
                long timeouts = conversations.stream()
                        .filter(c -> c.ending() == Ending.CUT_SHORT || c.ending() == Ending.SILENT).count();
                long reloads = conversations.stream().flatMap(c -> answered(c).stream())
                        .filter(r -> r.expected().reloads()).count();
                assertThat(reloadsRun).as(seed("reloads run: each one answered, none after a request that closes"))
                        .hasValue((int) reloads);
                String scraped = scrape(server);
                assertThat(scraped).as(seed("counters"))
                        .contains("mtls_proxy_admin_request_timeouts_total " + timeouts + ".0\n")
                        .contains("mtls_proxy_admin_connections_evicted_total 0.0\n")
                        .contains("mtls_proxy_connections_refused_total{listener=\"admin\",reason=\"limit\"} 0.0\n");
            }
            BufferLeaks.assertNoneReported(leaks, seed("no buffer leaked"));
        }
    }

    // ---- the model of one conversation ----

    private static Conversation conversation(int index, Random r) {
        Delivery delivery = r.nextBoolean() ? Delivery.PIPELINED : Delivery.ONE_BY_ONE;
        int roll = r.nextInt(100);
        Ending ending = roll < 60 ? Ending.CLOSING_REQUEST : roll < 75 ? Ending.CUT_SHORT : roll < 92 ? Ending.IDLE
                : Ending.SILENT;
        List<Request> requests = new ArrayList<>();
        if (ending == Ending.SILENT) {
            return new Conversation(index, delivery, requests, ending, null, null);
        }
        int count = 1 + r.nextInt(6);
        for (int i = 0; i < count; i++) {
            Request next = request(r);
            requests.add(next);
            if (next.expected().closes()) {
                // Whatever the client sent after it is neither answered nor acted on (RFC 9112 9.6).
                Request after = r.nextInt(3) == 0 ? reload(r, "1.1") : null;
                return new Conversation(index, delivery, requests, Ending.CLOSING_REQUEST, null, after);
            }
        }
        return switch (ending) {
            case CLOSING_REQUEST -> {
                requests.add(closing(r));
                yield new Conversation(index, delivery, requests, ending, null, null);
            }
            case CUT_SHORT -> {
                Request whole = wellFormed(r, false);
                while (whole.what().contains("expect=") || whole.expected().closes()) {
                    whole = wellFormed(r, false); // its head would get a 100 Continue, or a 400
                }
                byte[] cut = java.util.Arrays.copyOf(whole.bytes(), 1 + r.nextInt(whole.bytes().length - 1));
                yield new Conversation(index, delivery, requests, ending, cut, null);
            }
            default -> new Conversation(index, delivery, requests, ending, null, null);
        };
    }

    private static Request request(Random r) {
        int roll = r.nextInt(100);
        if (roll < 8) {
            return malformed(r);
        }
        if (roll < 12) {
            return oversized(r);
        }
        return wellFormed(r, r.nextInt(4) == 0);
    }

    /** A request whose answer closes the connection, as a client's last one. */
    private static Request closing(Random r) {
        return r.nextBoolean() ? wellFormedWith(r, "1.1", "close") : wellFormedWith(r, "1.0", null);
    }

    private static Request wellFormed(Random r, boolean mayClose) {
        String version = r.nextInt(5) == 0 ? "1.0" : "1.1";
        String connection = switch (r.nextInt(mayClose ? 4 : 3)) {
            case 0 -> null;
            case 1 -> r.nextBoolean() ? "keep-alive" : "Keep-Alive";
            case 2 -> version.equals("1.0") ? "keep-alive" : null;
            default -> r.nextBoolean() ? "close" : "Close";
        };
        if (!mayClose && version.equals("1.0")) {
            connection = "keep-alive";
        }
        return wellFormedWith(r, version, connection);
    }

    private static Request wellFormedWith(Random r, String version, String connection) {
        String method = METHODS.get(r.nextInt(METHODS.size()));
        int where = r.nextInt(10);
        String path = where < 6 ? READ_ONLY.get(r.nextInt(READ_ONLY.size()))
                : where < 8 ? "/admin/reload" : UNKNOWN.get(r.nextInt(UNKNOWN.size()));
        if (path.equals("/admin/reload") && r.nextBoolean()) {
            method = "POST";
        } else if (READ_ONLY.contains(path) && r.nextInt(3) > 0) {
            method = r.nextBoolean() ? "GET" : "HEAD";
        }
        String target = path;
        if (!path.equals("*") && r.nextInt(5) == 0) {
            target += "?probe=" + r.nextInt(100);
        }
        if (!path.equals("*") && r.nextInt(8) == 0) {
            target = "http://admin" + target;
        }
        Map<String, String> headers = new LinkedHashMap<>();
        if (version.equals("1.1") || r.nextBoolean()) {
            headers.put("Host", "admin");
        }
        if (connection != null) {
            headers.put("Connection", connection);
        }
        boolean openMetrics = path.equals("/metrics") && r.nextInt(3) == 0;
        if (openMetrics) {
            headers.put("Accept", "application/openmetrics-text; version=1.0.0");
        }
        String page = switch (r.nextInt(9)) {
            case 0 -> "Origin";
            case 1 -> "Sec-Fetch-Site";
            case 2 -> "Sec-Fetch-Site: none";
            case 3 -> "Sec-Fetch-Site: same-origin";
            default -> null;
        };
        if ("Origin".equals(page)) {
            headers.put("Origin", "http://evil.example");
        } else if ("Sec-Fetch-Site".equals(page)) {
            headers.put("Sec-Fetch-Site", "cross-site");
        } else if (page != null) {
            headers.put("Sec-Fetch-Site", page.substring(page.indexOf(' ') + 1));
        }
        for (int i = r.nextInt(4); i > 0; i--) {
            headers.put("X-Fuzz-" + i, "v".repeat(r.nextInt(200)));
        }
        String body = "";
        boolean chunked = false;
        if (r.nextInt(3) == 0 || method.equals("POST") && r.nextBoolean()) {
            body = "b".repeat(r.nextInt(2000));
            chunked = r.nextBoolean();
            if (chunked) {
                headers.put("Transfer-Encoding", "chunked");
            } else {
                headers.put("Content-Length", String.valueOf(body.length()));
            }
            if (version.equals("1.1") && r.nextInt(4) == 0) {
                headers.put("Expect", r.nextInt(3) == 0 ? "something-else" : "100-continue");
            }
        }
        StringBuilder text = new StringBuilder(method).append(' ').append(target).append(" HTTP/").append(version)
                .append("\r\n");
        headers.forEach((name, value) -> text.append(name).append(": ").append(value).append("\r\n"));
        text.append("\r\n").append(chunked ? chunks(r, body) : body);

        boolean keepAlive = version.equals("1.1") ? connection == null || !connection.equalsIgnoreCase("close")
                : connection != null && connection.equalsIgnoreCase("keep-alive");
        String responseConnection = !keepAlive ? "close" : version.equals("1.0") ? "keep-alive" : null;
        boolean fromAPage = page != null && !page.contains("none");
        Expected expected;
        if (chunked && version.equals("1.0")) {
            // RFC 9112 6.1: framing faulty in HTTP/1.0, whatever else the request says
            expected = exact(400, "bad request\n", "close", true);
        } else if (path.equals("/admin/reload")) {
            expected = !method.equals("POST") ? notAllowed("POST", responseConnection, !keepAlive)
                    : fromAPage ? exact(403, "requests from web pages are refused\n", responseConnection, !keepAlive)
                    : new Expected(200, null, RELOADED, null, responseConnection, !keepAlive, true);
        } else if (!READ_ONLY.contains(path)) {
            expected = exact(404, "not found\n", responseConnection, !keepAlive);
        } else if (!method.equals("GET") && !method.equals("HEAD")) {
            expected = notAllowed("GET, HEAD", responseConnection, !keepAlive);
        } else if ("Sec-Fetch-Site: same-origin".equals(page)) {
            // a page on a name rebound to the listener, reading it through the operator's browser
            expected = exact(403, "requests from web pages are refused\n", responseConnection, !keepAlive);
        } else {
            expected = switch (path) {
                case "/healthz" -> exact(200, "ok\n", responseConnection, !keepAlive);
                case "/readyz" -> exact(200, "ready\n", responseConnection, !keepAlive);
                case "/metrics" -> new Expected(200, null, openMetrics
                        ? Pattern.compile("(?s).*mtls_proxy_admin_request_timeouts_total.*# EOF\n")
                        : Pattern.compile("(?s).*# TYPE mtls_proxy_admin_request_timeouts_total counter\n.*"),
                        null, responseConnection, !keepAlive, false);
                case "/admin/certs" -> new Expected(200, null, Pattern.compile("\\[\\s*]\n"), null,
                        responseConnection, !keepAlive, false);
                default -> new Expected(200, null, Pattern.compile("(?s)\\{.*\"sha256\" : \"fuzz\".*}\n"), null,
                        responseConnection, !keepAlive, false);
            };
        }
        String what = method + " " + target + " HTTP/" + version + " connection=" + connection
                + (body.isEmpty() ? "" : (chunked ? " chunked " : " length ") + body.length())
                + (headers.containsKey("Expect") ? " expect=" + headers.get("Expect") : "")
                + (page == null ? "" : " page=" + page);
        // refused at its head: written in one go, as closing while the client still writes resets the connection
        boolean whole = expected.status() == 400;
        return new Request(what, text.toString().getBytes(StandardCharsets.ISO_8859_1), method.equals("HEAD"), whole,
                expected);
    }

    private static Request reload(Random r, String version) {
        String text = "POST /admin/reload HTTP/" + version + "\r\nHost: admin\r\n\r\n";
        return new Request("POST /admin/reload", text.getBytes(StandardCharsets.ISO_8859_1), false, false,
                new Expected(200, null, RELOADED, null, null, false, true));
    }

    private static String chunks(Random r, String body) {
        StringBuilder out = new StringBuilder();
        int at = 0;
        while (at < body.length()) {
            int size = Math.min(body.length() - at, 1 + r.nextInt(700));
            out.append(Integer.toHexString(size)).append(r.nextInt(6) == 0 ? ";ext=1" : "").append("\r\n")
                    .append(body, at, at + size).append("\r\n");
            at += size;
        }
        out.append("0\r\n");
        if (r.nextInt(4) == 0) {
            out.append("X-Trailer: t\r\n");
        }
        return out.append("\r\n").toString();
    }

    private static Expected exact(int status, String body, String connection, boolean closes) {
        return new Expected(status, body, null, null, connection, closes, false);
    }

    private static Expected notAllowed(String allow, String connection, boolean closes) {
        return new Expected(405, "method not allowed\n", null, allow, connection, closes, false);
    }

    /** Answered 400 and closed, whatever it asks for: RFC 9112 lets nothing after it be trusted to be framed right. */
    private static Request malformed(Random r) {
        String[] kinds = {
            "GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Big: " + "a".repeat(9000 + r.nextInt(20_000)) + "\r\n\r\n",
            "GET /" + "a".repeat(5000 + r.nextInt(5000)) + " HTTP/1.1\r\nHost: admin\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: admin\r\nNo colon here\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost : admin\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nHost: admin\r\nContent-Length: abc\r\n\r\n",
            "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "0\r\n\r\n",
            "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: admin\r\nX: \u0001\r\n\r\n",
            "GET /healthz HTTP/1.1\nHost: admin\n\n",
            "garbage\r\n\r\n",
            "\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003 not http\r\n\r\n",
        };
        int kind = r.nextInt(kinds.length);
        return new Request("malformed #" + kind, kinds[kind].getBytes(StandardCharsets.ISO_8859_1), false, true,
                exact(400, "bad request\n", "close", true));
    }

    /** A body over the cap: refused with 413 in its turn, and the connection closed after it, as nginx does. */
    private static Request oversized(Random r) {
        String body = "o".repeat(MAX_BODY + 1 + r.nextInt(4000));
        String text = switch (r.nextInt(3)) {
            case 0 -> "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: " + body.length() + "\r\n\r\n"
                    + body;
            case 1 -> "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunks(r, body);
            default -> "POST /healthz HTTP/1.1\r\nHost: admin\r\nExpect: 100-continue\r\nContent-Length: "
                    + body.length() + "\r\n\r\n";
        };
        return new Request("oversized " + body.length(), text.getBytes(StandardCharsets.ISO_8859_1), false, true,
                exact(413, "request body too large\n", "close", true));
    }

    /** The requests the model says are answered: those up to and including the first that closes. */
    private static List<Request> answered(Conversation c) {
        return c.requests();
    }

    // ---- holding a conversation on the wire ----

    private static void hold(AdminServer server, Conversation c) throws Exception {
        Random pace = new Random(SEED ^ c.index());
        StringBuilder transcript = new StringBuilder();
        try (Socket socket = connect(server)) {
            InputStream in = socket.getInputStream();
            OutputStream out = socket.getOutputStream();
            long lastRequestStart = System.nanoTime();
            if (c.delivery() == Delivery.PIPELINED) {
                ByteArrayOutputStream all = new ByteArrayOutputStream();
                List<Integer> cuts = new ArrayList<>();
                for (Request request : c.requests()) {
                    if (!request.whole()) {
                        for (int i = pace.nextInt(4); i > 0; i--) {
                            cuts.add(all.size() + pace.nextInt(request.bytes().length));
                        }
                    }
                    all.writeBytes(request.bytes());
                }
                if (c.afterClose() != null) {
                    all.writeBytes(c.afterClose().bytes()); // in the same write as the end of the request before
                }
                if (c.cutShort() != null) {
                    cuts.add(all.size());
                    all.writeBytes(c.cutShort());
                }
                write(out, all.toByteArray(), cuts, pace);
                for (Request request : c.requests()) {
                    check(c, request, read(in, request.head(), transcript), transcript);
                }
            } else {
                for (Request request : c.requests()) {
                    List<Integer> cuts = new ArrayList<>();
                    if (!request.whole()) {
                        for (int i = pace.nextInt(4); i > 0; i--) {
                            cuts.add(pace.nextInt(request.bytes().length));
                        }
                    }
                    byte[] bytes = request.bytes();
                    if (request.expected().closes() && c.afterClose() != null) {
                        ByteArrayOutputStream both = new ByteArrayOutputStream();
                        both.writeBytes(bytes);
                        both.writeBytes(c.afterClose().bytes());
                        bytes = both.toByteArray();
                    }
                    write(out, bytes, cuts, pace);
                    check(c, request, read(in, request.head(), transcript), transcript);
                    if (pace.nextInt(3) == 0) {
                        Thread.sleep(pace.nextInt(20)); // the client's pace between requests is the scenario
                    }
                }
                if (c.cutShort() != null) {
                    lastRequestStart = System.nanoTime();
                    out.write(c.cutShort());
                }
            }
            switch (c.ending()) {
                case CLOSING_REQUEST -> assertClosed(c, in, transcript, "right after the answer that ends it");
                case CUT_SHORT, SILENT -> {
                    socket.setSoTimeout((int) REQUEST_TIMEOUT.plusSeconds(5).toMillis());
                    assertClosed(c, in, transcript, "by the request timeout, unanswered");
                    if (c.delivery() == Delivery.ONE_BY_ONE) {
                        assertThat(Duration.ofNanos(System.nanoTime() - lastRequestStart))
                                .as(describe(c, transcript)).isGreaterThanOrEqualTo(REQUEST_TIMEOUT.minusMillis(50));
                    }
                }
                case IDLE -> {
                    long since = System.nanoTime();
                    socket.setSoTimeout((int) IDLE_TIMEOUT.plusSeconds(5).toMillis());
                    assertClosed(c, in, transcript, "by the idle timeout");
                    assertThat(Duration.ofNanos(System.nanoTime() - since)).as(describe(c, transcript))
                            .isGreaterThan(REQUEST_TIMEOUT.plusMillis(300)); // its last read was a little before
                }
            }
        } catch (IOException e) {
            throw new AssertionError(describe(c, transcript), e);
        }
    }

    /** Writes {@code bytes} cut where {@code cuts} say, with a short pause at some cuts. */
    private static void write(OutputStream out, byte[] bytes, List<Integer> cuts, Random pace) throws Exception {
        List<Integer> at = new ArrayList<>(new LinkedHashSet<>(cuts));
        Collections.sort(at);
        int from = 0;
        for (int cut : at) {
            if (cut <= from || cut >= bytes.length) {
                continue;
            }
            out.write(bytes, from, cut - from);
            out.flush();
            if (pace.nextBoolean()) {
                Thread.sleep(1 + pace.nextInt(15)); // a client's packets a little apart is the scenario
            }
            from = cut;
        }
        out.write(bytes, from, bytes.length - from);
        out.flush();
    }

    private static void check(Conversation c, Request request, Response response, StringBuilder transcript) {
        Expected e = request.expected();
        String as = describe(c, transcript) + "\nfor " + request.what();
        assertThat(response).as(as + ": an answer").isNotNull();
        assertThat(response.status()).as(as + ": status").isEqualTo(e.status());
        assertThat(response.headers().get("connection")).as(as + ": connection").isEqualTo(e.connection());
        assertThat(response.headers().get("allow")).as(as + ": allow").isEqualTo(e.allow());
        if (request.head()) {
            assertThat(response.body()).as(as + ": no body for HEAD").isEmpty();
            if (e.body() != null) {
                assertThat(response.headers().get("content-length")).as(as + ": the length GET would get")
                        .isEqualTo(String.valueOf(e.body().length()));
            }
        } else if (e.body() != null) {
            assertThat(response.body()).as(as + ": body").isEqualTo(e.body());
        } else if (e.bodyPattern() != null) {
            assertThat(response.body()).as(as + ": body").matches(e.bodyPattern());
        }
    }

    private static void assertClosed(Conversation c, InputStream in, StringBuilder transcript, String when)
            throws IOException {
        try {
            int next = in.read();
            if (next != -1) {
                transcript.append((char) next).append(new String(in.readNBytes(Math.min(in.available(), 2000)),
                        StandardCharsets.ISO_8859_1));
            }
            assertThat(next).as(describe(c, transcript) + "\nclosed " + when + ", and nothing more answered")
                    .isEqualTo(-1);
        } catch (SocketTimeoutException e) {
            throw new AssertionError(describe(c, transcript) + "\nstill open; expected closed " + when, e);
        } catch (SocketException e) {
            // reset: the server closed with bytes of ours unread, which is closed too
        }
    }

    /** One final response, skipping interim ones; null when the connection ends before its first byte. */
    private static Response read(InputStream in, boolean head, StringBuilder transcript) throws IOException {
        int interim = 0;
        while (true) {
            StringBuilder text = new StringBuilder();
            while (text.length() < 4 || !text.substring(text.length() - 4).equals("\r\n\r\n")) {
                int b;
                try {
                    b = in.read();
                } catch (SocketException e) {
                    b = -1;
                }
                if (b == -1) {
                    transcript.append(text).append("[closed]");
                    return null;
                }
                text.append((char) b);
            }
            transcript.append(text);
            String[] lines = text.toString().split("\r\n");
            assertThat(lines[0]).as(transcript.toString()).matches("HTTP/1\\.1 \\d{3} .*");
            int status = Integer.parseInt(lines[0].substring(9, 12));
            Map<String, String> headers = new LinkedHashMap<>();
            for (int i = 1; i < lines.length; i++) {
                int colon = lines[i].indexOf(':');
                headers.put(lines[i].substring(0, colon).toLowerCase(Locale.ROOT), lines[i].substring(colon + 1).trim());
            }
            if (status < 200) {
                interim++;
                continue;
            }
            String body = "";
            if (!head) {
                assertThat(headers).as(transcript.toString()).containsKey("content-length");
                body = new String(in.readNBytes(Integer.parseInt(headers.get("content-length"))),
                        StandardCharsets.UTF_8);
                transcript.append(body);
            }
            return new Response(status, headers, body, interim);
        }
    }

    private static String describe(Conversation c, StringBuilder transcript) {
        StringBuilder out = new StringBuilder(seed("conversation " + c.index())).append(": ").append(c.delivery())
                .append(", ending ").append(c.ending()).append('\n');
        for (Request request : c.requests()) {
            out.append("  > ").append(request.what()).append(" -> ").append(request.expected().status())
                    .append(request.expected().closes() ? " close" : "").append('\n');
        }
        if (c.afterClose() != null) {
            out.append("  > then ").append(c.afterClose().what()).append(" (not acted on)\n");
        }
        if (c.cutShort() != null) {
            out.append("  > then ").append(c.cutShort().length).append(" bytes of a request\n");
        }
        // metrics bodies are long: the end of what was received says what went wrong
        return out.append("received:\n").append(transcript.length() > 4000
                ? "[...]" + transcript.substring(transcript.length() - 4000) : transcript).toString();
    }

    // ---- slots ----

    /** What can be done with the connections in the slots test, each step leaving the model exact. */
    enum Step { OPEN_SILENT, OPEN_AND_EXCHANGE, EXCHANGE, HOLD_RELOAD, START_REQUEST, RELEASE_RELOAD, FINISH_REQUEST,
        CLOSE_BY_REQUEST }

    /** A client connection and what the model says of it; state, not a value. */
    static final class Client {
        final int id;
        final Socket socket;
        /** Mid-request (its head sent, its body not) or waiting for a reload: never closed to make room. */
        String busy;

        Client(int id, Socket socket) {
            this.id = id;
            this.socket = socket;
        }

        @Override
        public String toString() {
            return "connection " + id + (busy == null ? "" : " (" + busy + ")");
        }
    }

    /**
     * With the real cap of 64, the model tracks every connection the listener holds, which of them are idle and in
     * what order they became so (connected and silent, or answered and kept alive), and which are busy (a request
     * whose body has not arrived, found out by the {@code 100 Continue} its head gets, or a reload still running).
     * A new connection over the cap closes the one idle longest, or is refused when none is.
     */
    @Test
    @Timeout(90)
    void withEverySlotTakenTheConnectionIdleLongestMakesRoomAndABusyOneNever() throws Exception {
        Random r = new Random(SEED * 31 + 7);
        int cap = AdminServer.Limits.DEFAULT.maxConnections();
        List<CompletableFuture<ReloadOutcome>> reloads = new CopyOnWriteArrayList<>();
        AdminEndpoints.Reloader held = trigger -> {
            CompletableFuture<ReloadOutcome> reload = new CompletableFuture<>();
            reloads.add(reload);
            return reload;
        };
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        ProxyMetrics metrics = new ProxyMetrics(registry);
        Counter evictedCounter = metrics.adminConnectionsEvicted();
        Counter refusedCounter = metrics.connectionsRefused("admin");
        List<Client> open = new ArrayList<>();
        /** Longest idle first. */
        List<Client> idle = new ArrayList<>();
        Map<Client, CompletableFuture<ReloadOutcome>> waiting = new LinkedHashMap<>();
        int evicted = 0;
        int refused = 0;
        int ids = 0;
        List<String> steps = new ArrayList<>();
        try (LogCapture leaks = LogCapture.of(ResourceLeakDetector.class);
                LogCapture quiet = LogCapture.quietly(IdleConnections.class)) {
            try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(registry, held),
                    new AdminServer.Limits(Duration.ofMinutes(2), Duration.ofSeconds(60), cap),
                    counters(metrics))) {
                try {
                    for (int step = 0; step < 400; step++) {
                        Step what = step(r, step, open, idle, waiting, cap);
                        String as = seed("step " + step + " " + what) + "\nsteps so far:\n" + String.join("\n",
                                steps.subList(Math.max(0, steps.size() - 30), steps.size()));
                        switch (what) {
                            case OPEN_SILENT, OPEN_AND_EXCHANGE -> {
                                Client client = new Client(ids++, connect(server));
                                Client out = null;
                                if (open.size() >= cap) {
                                    if (idle.isEmpty()) {
                                        refused++;
                                        steps.add(what + " " + client + ": refused");
                                        assertEnded(client, as + ": refused at accept, none being idle");
                                        client.socket.close();
                                        int refusedSoFar = refused;
                                        await(as + ": refusals counted")
                                                .until(() -> refusedCounter.count() == refusedSoFar);
                                        continue;
                                    }
                                    out = idle.remove(0);
                                    open.remove(out);
                                    evicted++;
                                }
                                open.add(client);
                                idle.add(client);
                                if (what == Step.OPEN_AND_EXCHANGE) {
                                    exchange(client, r, as);
                                    idle.remove(client);
                                    idle.add(client);
                                }
                                steps.add(what + " " + client + (out == null ? "" : ", evicting " + out));
                                if (out != null) {
                                    assertEnded(out, as + ": " + out + " was idle longest, closed to make room");
                                    out.socket.close();
                                }
                            }
                            case EXCHANGE -> {
                                Client client = idle.get(r.nextInt(idle.size()));
                                steps.add(what + " " + client);
                                exchange(client, r, as);
                                idle.remove(client);
                                idle.add(client);
                            }
                            case HOLD_RELOAD -> {
                                Client client = idle.remove(r.nextInt(idle.size()));
                                steps.add(what + " " + client);
                                int before = reloads.size();
                                send(client, "POST /admin/reload HTTP/1.1\r\nHost: admin\r\n\r\n", r);
                                await(as + ": the reload asked for").until(() -> reloads.size() > before);
                                client.busy = "waiting for a reload";
                                waiting.put(client, reloads.get(before));
                            }
                            case START_REQUEST -> {
                                Client client = idle.remove(r.nextInt(idle.size()));
                                steps.add(what + " " + client);
                                send(client, "POST /healthz HTTP/1.1\r\nHost: admin\r\nExpect: 100-continue\r\n"
                                        + "Content-Length: 5\r\n\r\n", r);
                                // the interim answer says the listener read the head and waits for the body
                                assertThat(new String(client.socket.getInputStream().readNBytes(25),
                                        StandardCharsets.ISO_8859_1)).as(as).isEqualTo("HTTP/1.1 100 Continue\r\n\r\n");
                                client.busy = "mid-request";
                            }
                            case RELEASE_RELOAD -> {
                                Client client = new ArrayList<>(waiting.keySet()).get(r.nextInt(waiting.size()));
                                steps.add(what + " " + client);
                                waiting.remove(client).complete(new ReloadOutcome(true, 2, null, List.of()));
                                assertThat(answer(client)).as(as).startsWith("HTTP/1.1 200 OK\r\n");
                                client.busy = null;
                                idle.add(client);
                            }
                            case FINISH_REQUEST -> {
                                Client client = open.stream().filter(o -> "mid-request".equals(o.busy))
                                        .toList().get(0);
                                steps.add(what + " " + client);
                                send(client, "12345", r);
                                assertThat(answer(client)).as(as).startsWith("HTTP/1.1 405 ");
                                client.busy = null;
                                idle.add(client);
                            }
                            case CLOSE_BY_REQUEST -> {
                                Client client = idle.remove(r.nextInt(idle.size()));
                                steps.add(what + " " + client);
                                send(client, "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n", r);
                                assertThat(answer(client)).as(as).startsWith("HTTP/1.1 200 OK\r\n");
                                assertEnded(client, as + ": after Connection: close");
                                client.socket.close();
                                open.remove(client);
                            }
                        }
                        // counted on the listener's loop around the close the client saw
                        int evictedSoFar = evicted;
                        int refusedSoFar = refused;
                        await(as + ": evictions and refusals counted").until(
                                () -> evictedCounter.count() == evictedSoFar && refusedCounter.count() == refusedSoFar);
                    }
                    assertThat(evicted).as(seed("the sequence evicts")).isPositive();
                    assertThat(refused).as(seed("the sequence refuses")).isPositive();
                    assertThat(quiet.lines()).as(seed("closes to make room logged at most once a minute"))
                            .singleElement().asString().contains("event=admin_idle_connection_closed closed=1 ");

                    // Every connection the model says is open is served: none of them was closed behind its back.
                    for (Client client : new ArrayList<>(open)) {
                        String as = seed("at the end, " + client);
                        if ("mid-request".equals(client.busy)) {
                            send(client, "12345", r);
                        } else if (client.busy != null) {
                            waiting.remove(client).complete(new ReloadOutcome(true, 2, null, List.of()));
                        } else {
                            send(client, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n", r);
                        }
                        assertThat(answer(client)).as(as).startsWith("HTTP/1.1 ");
                    }
                    Client scraper = open.get(0);
                    send(scraper, "GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n", r);
                    assertThat(answer(scraper)).as(seed("counters as Prometheus reads them"))
                            .contains("mtls_proxy_admin_connections_evicted_total " + evicted + ".0\n")
                            .contains("mtls_proxy_connections_refused_total{listener=\"admin\",reason=\"limit\"} "
                                    + refused + ".0\n")
                            .contains("mtls_proxy_admin_request_timeouts_total 0.0\n");
                } finally {
                    for (Client client : open) {
                        client.socket.close();
                    }
                }
            }
            BufferLeaks.assertNoneReported(leaks, seed("no buffer leaked"));
        }
    }

    /**
     * A step that keeps the listener near its cap, where making room is decided: in stretches, connections are made
     * busy until none is idle (and new ones are refused), then freed again.
     */
    private static Step step(Random r, int index, List<Client> open, List<Client> idle, Map<Client, ?> waiting,
            int cap) {
        long midRequest = open.stream().filter(c -> "mid-request".equals(c.busy)).count();
        boolean filling = index % 200 >= 100;
        while (true) {
            int roll = !filling ? r.nextInt(100) : r.nextInt(5) == 0 ? r.nextInt(40) : 52 + r.nextInt(24);
            Step step = roll < 12 ? Step.OPEN_SILENT : roll < 40 ? Step.OPEN_AND_EXCHANGE : roll < 52 ? Step.EXCHANGE
                    : roll < 64 ? Step.HOLD_RELOAD : roll < 76 ? Step.START_REQUEST : roll < 86 ? Step.RELEASE_RELOAD
                    : roll < 96 ? Step.FINISH_REQUEST : Step.CLOSE_BY_REQUEST;
            boolean possible = switch (step) {
                case OPEN_SILENT, OPEN_AND_EXCHANGE -> true;
                case EXCHANGE, CLOSE_BY_REQUEST -> !idle.isEmpty();
                // while under the cap, connections pile up; near it, some stay idle so that evictions happen
                case HOLD_RELOAD, START_REQUEST -> !idle.isEmpty()
                        && (filling || open.size() < cap - 4 || r.nextInt(3) == 0);
                case RELEASE_RELOAD -> !waiting.isEmpty();
                case FINISH_REQUEST -> midRequest > 0;
            };
            if (possible) {
                return step;
            }
        }
    }

    private static void exchange(Client client, Random r, String as) throws Exception {
        send(client, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n", r);
        assertThat(answer(client)).as(as + ": " + client).startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
    }

    private static void send(Client client, String text, Random r) throws Exception {
        byte[] bytes = text.getBytes(StandardCharsets.ISO_8859_1);
        write(client.socket.getOutputStream(), bytes, List.of(r.nextInt(bytes.length)), r);
    }

    private static String answer(Client client) throws IOException {
        StringBuilder transcript = new StringBuilder();
        Response response = read(client.socket.getInputStream(), false, transcript);
        assertThat(response).as(client + " answered: " + transcript).isNotNull();
        return transcript.toString();
    }

    private static void assertEnded(Client client, String as) throws IOException {
        try {
            assertThat(client.socket.getInputStream().read()).as(as).isEqualTo(-1);
        } catch (SocketTimeoutException e) {
            throw new AssertionError(as + ": still open", e);
        } catch (SocketException e) {
            // reset: closed too
        }
    }

    // ---- fixtures ----

    private static ConditionFactory await(String as) {
        return Awaitility.await(as).atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(1));
    }

    private static AdminEndpoints endpoints(PrometheusMeterRegistry registry, AdminEndpoints.Reloader reloader) {
        return new AdminEndpoints(registry, () -> true, () -> new AdminEndpoints.ConfigSnapshot(null, 1, "fuzz"),
                () -> new TlsInventory(List.of(), List.of()), reloader, Clock.systemUTC());
    }

    /** Wired as RunCommand wires them, so the counters are read from /metrics. */
    private static AdminServer.Counters counters(ProxyMetrics metrics) {
        Counter refused = metrics.connectionsRefused("admin");
        Counter timedOut = metrics.adminRequestTimeouts();
        Counter evicted = metrics.adminConnectionsEvicted();
        return new AdminServer.Counters(refused::increment, timedOut::increment, evicted::increment);
    }

    private static String scrape(AdminServer server) throws IOException {
        try (Socket socket = connect(server)) {
            socket.getOutputStream().write("GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
                    .getBytes(StandardCharsets.ISO_8859_1));
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static Socket connect(AdminServer server) throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort());
        socket.setSoTimeout(5_000);
        return socket;
    }

    static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    private static String seed(String what) {
        return what + " (seed " + SEED + ": -Dmtlsproxy.test.seed=" + SEED + " runs this sequence again)";
    }
}
