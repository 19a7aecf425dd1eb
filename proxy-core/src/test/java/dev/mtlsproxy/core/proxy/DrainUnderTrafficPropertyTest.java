package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.BodyPatternCheck;
import dev.mtlsproxy.core.testing.BufferLeaks;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.StalledHandshake;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestBackend.IntegrityBody;
import io.netty.channel.Channel;
import io.netty.util.ResourceLeakDetector;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Graceful shutdown under traffic, judged by the README's "Graceful shutdown" alone. One proxy in front of the
 * {@code /integrity/} backend (which answers after a delay, or streams slowly, and echoes the SHA-256 of what it
 * received), and a seeded mix of 30 to 60 real mTLS connections, each in one state when the drain starts: idle
 * keep-alive after some answers; a request in flight (small, a large upload sized or chunked, a large download);
 * half a request head read; a head and half a body read; two or three requests pipelined in one write behind a slow
 * one; a handshake done and nothing sent, for good or until 0-3 s after the drain started; a handshake held half
 * way, or held there for good; a large download read slowly; a WebSocket tunnel. The drain's deadline is drawn too,
 * so that it sometimes cuts.
 *
 * <p>What each client may see, from the README: an idle keep-alive connection is closed at once, without a byte; a
 * request read in part or whole before the drain, or whose first bytes come within 2 s of it (of the handshake's
 * end, for one in its handshake), is answered whole (status, SHA-256 of the body at the backend, the body's own
 * bytes) with {@code Connection: close}, reaches the backend exactly once, and the connection then closes without
 * another byte; requests pipelined behind it are not answered and reach no backend; a connection that sends nothing
 * within the grace is closed without a byte, and what it sends later reaches no backend. A handshake that never ends
 * is kept, and closed by the handshake timeout (counted as such) or cut at the deadline, whichever comes first: it
 * holds the drain no longer. Only the drain deadline cuts a response short or leaves a request unanswered, and then
 * {@code drain} returns false; it returns true when nothing was cut, and the proxy's connections reach none either
 * way. A WebSocket tunnel is a request still running: it is relayed until a side closes it, or cut at the deadline.
 * No buffer leaks.
 *
 * <p>The mix comes from one seed, printed with every failure; {@code -Dmtlsproxy.test.seed=N} runs it again (the
 * interleaving is the scheduler's) and {@code -Dmtlsproxy.test.seed=random} a new one.
 */
class DrainUnderTrafficPropertyTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final long SEED = RoutePolicyPropertyTest.seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    static final Duration GRACE = ExchangeSequencer.FIRST_REQUEST_GRACE;
    /** A deadline no served connection of the mix comes near: with no tunnel held open, nothing may be cut. */
    static final Duration AMPLE = Duration.ofSeconds(12);
    /**
     * Scheduling slack on a loaded two-core machine: how much earlier than the deadline a cut connection may look
     * closed to its client, and how late "at once" may be.
     */
    static final long SLACK = TimeUnit.MILLISECONDS.toNanos(300);
    /**
     * The listener's. A held handshake starts when its connection is armed, shortly before the drain: this is ample
     * for one resumed up to 1.5 s into the drain, and short of {@link #AMPLE}, so that one that never ends is closed
     * by it unless a shorter deadline cuts it first.
     */
    static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

    @RegisterExtension
    final LogCapture log = LogCapture.of(ProxyServer.class);

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    private final Queue<String> failures = new ConcurrentLinkedQueue<>();
    /** Requests the backend received, by request id. */
    private final Map<String, AtomicInteger> arrivals = new ConcurrentHashMap<>();
    /** Requests the mix sent, by id: the backend must have received no other. */
    private final Map<String, Request> sent = new ConcurrentHashMap<>();

    enum State {
        IDLE_KEEP_ALIVE, IN_FLIGHT, HALF_HEAD, HEAD_AND_HALF_BODY, PIPELINED, SILENT, LATE_REQUEST, HANDSHAKING,
        HANDSHAKE_NEVER_ENDS, SLOW_READER, WEBSOCKET
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void everyConnectionSeesWhatTheReadmePromisesForItsStateWhenTheDrainStarts() throws Exception {
        Random random = new Random(SEED);
        int count = 30 + random.nextInt(31);
        boolean cutting = random.nextInt(3) == 0;
        Duration timeout = cutting ? Duration.ofMillis(500 + random.nextInt(2500)) : AMPLE;
        boolean holdATunnel = random.nextInt(4) == 0;
        RunningProxy proxy = fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders-api", "/", "shop", "orders")
                .handshakeTimeout(HANDSHAKE_TIMEOUT));
        SSLContext tls = MtlsClient.clientContext(fixture.pki().root(), fixture.pki().client(ORDERS));
        List<Connection> connections = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            boolean firstTunnel = connections.stream().noneMatch(c -> c.state == State.WEBSOCKET);
            connections.add(new Connection(i, proxy, tls, new Random(SEED * 31 + i), holdATunnel && firstTunnel));
        }
        boolean tunnelHeld = connections.stream().anyMatch(c -> c.state == State.WEBSOCKET && c.holdTunnel);
        String mix = "seed " + SEED + ": -Dmtlsproxy.test.seed=" + SEED + " runs this mix again; " + count
                + " connections, drainTimeout " + timeout.toMillis() + " ms" + (tunnelHeld ? ", a tunnel held" : "");

        ExecutorService pool = Executors.newFixedThreadPool(count + 1);
        Thread collector = new Thread(this::collectArrivals, "arrivals");
        collector.setDaemon(true);
        collector.start();
        boolean drained;
        long t0;
        long t1;
        try (LogCapture leaks = LogCapture.of(ResourceLeakDetector.class)) {
            // Every connection is set up and parked, then brought to its state, so that what is in flight is still
            // in flight when the drain starts.
            all(pool, connections, Connection::open);
            List<Connection> inFlight = connections.stream().filter(Connection::inFlight).toList();
            List<Connection> others = connections.stream().filter(c -> !c.inFlight()).toList();
            all(pool, others, Connection::arm);
            for (Connection c : others) {
                c.awaitArmed();
            }
            // Last, and quickly: each backend answers a second or more after the request reached it.
            all(pool, inFlight, Connection::arm);
            for (Connection c : inFlight) {
                c.awaitArmed();
            }
            assertThat(failures).as("before the drain (" + mix + ")").isEmpty();

            t0 = System.nanoTime();
            CompletableFuture<Boolean> drain = DrainServesRequestsOnTheirWayTest.drainStarted(proxy, log, timeout);
            t1 = System.nanoTime();
            for (Connection c : connections) {
                c.drainStarted(t0, t1, t0 + timeout.toNanos());
            }
            List<Future<?>> finishing = new ArrayList<>();
            for (Connection c : connections) {
                finishing.add(pool.submit(c::finish));
            }
            drained = drain.get(timeout.toMillis() + 10_000, TimeUnit.MILLISECONDS);
            long returned = System.nanoTime();
            for (Future<?> f : finishing) {
                f.get(20, TimeUnit.SECONDS);
            }
            await().atMost(Duration.ofSeconds(3)).untilAsserted(() -> assertThat(proxy.server().openConnections())
                    .as("the proxy's connections after the drain (" + mix + ")").isZero());
            pool.shutdownNow();
            Thread.sleep(200); // the last arrivals to be collected: none is expected after the clients are done
            collector.interrupt();
            collector.join(2_000);

            List<String> problems = new ArrayList<>(failures);
            boolean anyCut = false;
            long lastEnd = 0;
            for (Connection c : connections) {
                anyCut |= c.judge(drained, problems);
                lastEnd = Math.max(lastEnd, c.endedAt);
            }
            for (String id : arrivals.keySet()) {
                if (!sent.containsKey(id)) {
                    problems.add("the backend received " + id + ", which no client sent");
                }
            }
            if (drained) {
                if (anyCut) {
                    problems.add("drain() returned true, but a connection was cut");
                }
                if (returned - t0 > timeout.toNanos() + SLACK) {
                    problems.add("drain() returned true after its deadline");
                }
            } else {
                if (lastEnd < t0 + timeout.toNanos() - SLACK) {
                    problems.add("drain() returned false, but every connection had closed "
                            + TimeUnit.NANOSECONDS.toMillis(t0 + timeout.toNanos() - lastEnd)
                            + " ms before the deadline");
                }
            }
            long timedOut = connections.stream().filter(c -> c.state == State.HANDSHAKE_NEVER_ENDS
                    && c.endedAt < c.deadline - SLACK).count();
            long neverEnding = connections.stream().filter(c -> c.state == State.HANDSHAKE_NEVER_ENDS).count();
            long counted = (long) proxy.count("mtls.proxy.tls.handshakes", "result", "failure", "reason",
                    "handshake_timeout");
            if (counted < timedOut || counted > neverEnding) {
                problems.add(counted + " handshake timeouts counted, for " + timedOut + " handshakes that never ended"
                        + " closed before the deadline (of " + neverEnding + ")");
            }
            if (!cutting && !tunnelHeld && !drained) {
                problems.add("cut with a deadline of " + AMPLE + ", which none of the mix needs");
            }
            if (tunnelHeld && drained) {
                problems.add("drained although a WebSocket tunnel was held open past the deadline");
            }
            System.out.println("DrainUnderTrafficPropertyTest " + mix + ", drained " + drained + ": "
                    + connections.stream().collect(java.util.stream.Collectors.groupingBy(Connection::summary,
                            java.util.TreeMap::new, java.util.stream.Collectors.counting())));
            assertThat(problems).as(mix).isEmpty();
            BufferLeaks.assertNoneReported(leaks, "buffer leaks (" + mix + ")");
        } finally {
            pool.shutdownNow();
            collector.interrupt();
            for (Connection c : connections) {
                c.closeQuietly();
            }
        }
    }

    private void all(ExecutorService pool, List<Connection> connections, Step step) throws Exception {
        List<Future<?>> steps = new ArrayList<>();
        for (Connection c : connections) {
            steps.add(pool.submit(() -> {
                try {
                    step.run(c);
                } catch (Exception e) {
                    failures.add(c + ": " + e);
                }
            }));
        }
        for (Future<?> f : steps) {
            f.get(30, TimeUnit.SECONDS);
        }
    }

    @FunctionalInterface
    private interface Step {
        void run(Connection c) throws Exception;
    }

    private void collectArrivals() {
        try {
            while (!Thread.currentThread().isInterrupted()) {
                TestBackend.Recorded r = fixture.backend().nextRequest(50, TimeUnit.MILLISECONDS);
                if (r == null) {
                    continue;
                }
                String id = r.headers().get(IntegrityBody.REQUEST_ID);
                if (id == null && r.uri().startsWith("/ws")) {
                    continue; // a tunnel's upgrade request
                }
                Request request = id == null ? null : sent.get(id);
                if (request != null && (!request.sha256.equals(r.bodySha256())
                        || r.bodyBytes() != request.body.length)) {
                    failures.add(id + " reached the backend with " + r.bodyBytes() + " bytes " + r.bodySha256()
                            + ", sent " + request.body.length + " bytes " + request.sha256);
                }
                arrivals.computeIfAbsent(String.valueOf(id), k -> new AtomicInteger()).incrementAndGet();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private int arrived(String id) {
        AtomicInteger n = arrivals.get(id);
        return n == null ? 0 : n.get();
    }

    // ---- one request --------------------------------------------------------------------------------------------

    /** An {@code /integrity/} request: a body from a pattern, an answer of a given size, after {@code headMs}. */
    static final class Request {
        final String id;
        final String method;
        final byte[] body;
        final boolean chunkedBody;
        final long responseLength;
        final boolean chunkedResponse;
        final int responsePattern;
        final boolean trickle;
        final int headMs;
        final String sha256;
        final byte[] head;
        final byte[] bytes;
        /** When its first byte was written. */
        volatile long sentAt;

        Request(String id, Random random, String method, int bodyLength, boolean chunkedBody, long responseLength,
                boolean trickle, int headMs) {
            this.id = id;
            this.method = method;
            this.chunkedBody = chunkedBody;
            this.responseLength = responseLength;
            this.chunkedResponse = random.nextBoolean();
            this.responsePattern = random.nextInt(256);
            this.trickle = trickle;
            this.headMs = headMs;
            int bodyPattern = random.nextInt(256);
            body = new byte[bodyLength];
            for (int i = 0; i < bodyLength; i++) {
                body[i] = IntegrityBody.at(bodyPattern, i);
            }
            sha256 = java.util.HexFormat.of().formatHex(sha256().digest(body));
            StringBuilder h = new StringBuilder(method).append(' ').append(IntegrityBody.PATH).append(id)
                    .append("?bytes=").append(responseLength).append("&pattern=").append(responsePattern)
                    .append("&chunked=").append(chunkedResponse ? 1 : 0).append("&headMs=").append(headMs)
                    .append("&trickle=").append(trickle ? 1 : 0)
                    .append(" HTTP/1.1\r\nHost: localhost\r\n" + IntegrityBody.REQUEST_ID + ": ").append(id)
                    .append("\r\n");
            if (chunkedBody) {
                h.append("Transfer-Encoding: chunked\r\n");
            } else if (bodyLength > 0 || method.equals("POST")) {
                h.append("Content-Length: ").append(bodyLength).append("\r\n");
            }
            head = h.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1);
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            all.writeBytes(head);
            if (chunkedBody) {
                int offset = 0;
                while (offset < body.length) {
                    int n = Math.min(body.length - offset, 1 + random.nextInt(48 * 1024));
                    all.writeBytes((Integer.toHexString(n) + "\r\n").getBytes(StandardCharsets.ISO_8859_1));
                    all.write(body, offset, n);
                    all.writeBytes("\r\n".getBytes(StandardCharsets.ISO_8859_1));
                    offset += n;
                }
                all.writeBytes("0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            } else {
                all.writeBytes(body);
            }
            bytes = all.toByteArray();
        }

        /** The answer must say Connection: close unless its head may have been written before the drain event. */
        boolean headAfter(long drainEventsDelivered) {
            return drainEventsDelivered < sentAt + TimeUnit.MILLISECONDS.toNanos(headMs);
        }

        @Override
        public String toString() {
            return id + " " + method + " body=" + body.length + (chunkedBody ? " chunked" : "") + " response="
                    + responseLength + (chunkedResponse ? " chunked" : "") + (trickle ? " trickled" : "")
                    + " headMs=" + headMs;
        }
    }

    /** What a client read of one answer. */
    record Answer(Request request, int status, String connection, String problem) {
    }

    // ---- one connection -----------------------------------------------------------------------------------------

    /** One client connection: its state at the drain, planned from its own seed, and what it saw. */
    final class Connection {
        final int index;
        final RunningProxy proxy;
        final SSLContext tls;
        final Random random;
        final State state;
        /** Answers on the connection before the request of its state. */
        final int answeredBefore;
        final boolean holdTunnel;
        /** Milliseconds after the drain: a late request is sent, a held handshake resumes, a tunnel is closed. */
        final int afterDrainMs;
        final List<Request> requests = new ArrayList<>();
        final List<Answer> answers = new ArrayList<>();
        MtlsClient client;
        /** The held handshake of a connection in its handshake at the drain. */
        StalledHandshake stalled;
        /** Where the state's request is split: sent up to here before the drain, the rest after. */
        int split;
        AtomicLong proxyRead;
        long t0;
        long t1;
        long deadline;
        /** When the client saw the connection end (or gave up on it). */
        long endedAt;
        /** How the connection ended after what the client read: "closed", or what arrived or failed instead. */
        String end;
        boolean tunnelEchoedAfterDrain;
        String tunnelProblem;

        /** @param holdTunnel whether a WebSocket tunnel of this connection is kept open by its client */
        Connection(int index, RunningProxy proxy, SSLContext tls, Random random, boolean holdTunnel) {
            this.index = index;
            this.proxy = proxy;
            this.tls = tls;
            this.random = random;
            State[] states = State.values();
            this.state = states[random.nextInt(states.length)];
            this.answeredBefore = switch (state) {
                case IDLE_KEEP_ALIVE -> 1 + random.nextInt(3);
                case IN_FLIGHT, HALF_HEAD, HEAD_AND_HALF_BODY, PIPELINED, SLOW_READER -> random.nextInt(3);
                default -> 0;
            };
            this.holdTunnel = state == State.WEBSOCKET && holdTunnel;
            this.afterDrainMs = switch (state) {
                // Well inside the grace, or well after it: a request whose first bytes arrive near its end may go
                // either way, which the checks allow for by the times actually seen.
                case LATE_REQUEST -> random.nextBoolean() ? random.nextInt(1400) : 2700 + random.nextInt(500);
                case HANDSHAKING -> random.nextInt(1500);
                case WEBSOCKET -> random.nextInt(1000);
                default -> 0;
            };
        }

        private Request plan(String suffix, String method, int bodyLength, boolean chunked, long responseLength,
                boolean trickle, int headMs) {
            Request r = new Request("c" + index + "-" + suffix, random, method, bodyLength, chunked, responseLength,
                    trickle, headMs);
            sent.put(r.id, r);
            return r;
        }

        /** The request of this connection's state. */
        private Request stateRequest() {
            switch (state) {
                case IN_FLIGHT -> {
                    int kind = random.nextInt(4);
                    int headMs = 1500 + random.nextInt(1500);
                    return switch (kind) {
                        case 0 -> plan("small", "GET", 0, false, random.nextInt(4096), false, headMs);
                        case 1 -> plan("upload", "POST", 256 * 1024 + random.nextInt(1024 * 1024), false,
                                random.nextInt(4096), false, headMs);
                        case 2 -> plan("chunked-upload", "PUT", 64 * 1024 + random.nextInt(512 * 1024), true,
                                random.nextInt(4096), false, headMs);
                        default -> plan("download", "GET", 0, false, 256 * 1024 + random.nextInt(1024 * 1024),
                                random.nextBoolean(), headMs);
                    };
                }
                case HALF_HEAD, LATE_REQUEST, HANDSHAKING -> {
                    boolean post = random.nextBoolean();
                    return plan("request", post ? "POST" : "GET", post ? random.nextInt(64 * 1024) : 0, false,
                            random.nextInt(64 * 1024), false, random.nextInt(200));
                }
                case HEAD_AND_HALF_BODY -> {
                    return plan("upload", "POST", 2 + random.nextInt(256 * 1024), random.nextBoolean(),
                            random.nextInt(64 * 1024), false, random.nextInt(200));
                }
                case SLOW_READER -> {
                    return plan("slow-read", "GET", 0, false, 512 * 1024 + random.nextInt(1536 * 1024), false,
                            600 + random.nextInt(600));
                }
                default -> {
                    return null;
                }
            }
        }

        /** Whether its state has a request at the backend when the drain starts, answered a while later. */
        boolean inFlight() {
            return state == State.IN_FLIGHT || state == State.SLOW_READER || state == State.PIPELINED;
        }

        /** Connects and has its earlier requests answered. */
        void open() throws Exception {
            if (state == State.HANDSHAKING || state == State.HANDSHAKE_NEVER_ENDS) {
                // Its handshake starts when it is armed, close to the drain: the handshake timeout runs meanwhile.
                return;
            }
            client = MtlsClient.connect(proxy.address(), tls, null, null);
            for (int i = 0; i < answeredBefore; i++) {
                Request r = plan("before" + i, random.nextBoolean() ? "GET" : "POST", random.nextInt(8192), false,
                        random.nextInt(16 * 1024), false, 0);
                send(r, r.bytes.length);
                Answer a = read(r, OutputStream.nullOutputStream());
                if (a.problem != null || "close".equalsIgnoreCase(a.connection)) {
                    failures.add(this + ": an answer before the drain: " + a);
                }
            }
        }

        /** Brings the connection to its state; {@link #awaitArmed} waits until the proxy is there too. */
        void arm() throws Exception {
            switch (state) {
                case IN_FLIGHT, SLOW_READER -> {
                    Request r = stateRequest();
                    requests.add(r);
                    send(r, r.bytes.length);
                }
                case HALF_HEAD, HEAD_AND_HALF_BODY -> {
                    Request r = stateRequest();
                    requests.add(r);
                    split = state == State.HALF_HEAD ? 1 + random.nextInt(r.head.length - 1)
                            : r.head.length + 1 + random.nextInt(r.bytes.length - r.head.length - 1);
                    proxyRead = DrainServesRequestsOnTheirWayTest.bytesReadBy(proxySide());
                    send(r, Math.min(split, r.head.length));
                    if (split > r.head.length) {
                        client.output().write(r.bytes, r.head.length, split - r.head.length);
                        client.output().flush();
                    }
                }
                case PIPELINED -> {
                    int n = 2 + random.nextInt(2);
                    ByteArrayOutputStream batch = new ByteArrayOutputStream();
                    for (int i = 0; i < n; i++) {
                        boolean post = random.nextBoolean();
                        Request r = plan("pipelined" + i, post ? "POST" : "GET", post ? random.nextInt(4096) : 0,
                                false, random.nextInt(16 * 1024), false, i == 0 ? 1500 + random.nextInt(1500) : 0);
                        requests.add(r);
                        batch.writeBytes(r.bytes);
                    }
                    long now = System.nanoTime();
                    requests.forEach(r -> r.sentAt = now);
                    client.output().write(batch.toByteArray());
                    client.output().flush();
                }
                case LATE_REQUEST -> requests.add(stateRequest());
                case HANDSHAKING -> {
                    stalled = StalledHandshake.start(proxy.address(), fixture.pki().root(),
                            fixture.pki().client(ORDERS));
                    requests.add(stateRequest());
                }
                // held where the proxy asked for the certificate, for good
                case HANDSHAKE_NEVER_ENDS -> stalled = StalledHandshake.start(proxy.address(), fixture.pki().root(),
                        fixture.pki().client(ORDERS));
                case WEBSOCKET -> {
                    client.send("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
                    MtlsClient.Response upgraded = client.readHeadResponse();
                    if (upgraded.status() != 101 || echo() != null) {
                        failures.add(this + ": the tunnel did not open: " + upgraded.status());
                    }
                }
                default -> {
                    // idle or silent: as it is
                }
            }
        }

        /** Waits until the proxy has what the state says it has when the drain starts. */
        void awaitArmed() throws Exception {
            Duration limit = Duration.ofSeconds(20);
            switch (state) {
                case IN_FLIGHT, SLOW_READER, PIPELINED -> await().atMost(limit).pollInterval(Duration.ofMillis(5))
                        .until(() -> arrived(requests.get(0).id) > 0);
                case HALF_HEAD, HEAD_AND_HALF_BODY -> await().atMost(limit).until(() -> proxyRead.get() > 0);
                case HANDSHAKING, HANDSHAKE_NEVER_ENDS -> assertThat(stalled.awaitStalled(limit))
                        .as(this + ": the proxy asked for the certificate").isTrue();
                case SILENT, LATE_REQUEST -> await().atMost(limit).until(() -> proxy.count(
                        "mtls.proxy.tls.handshakes", "result", "success") >= 1 && handshakeDoneOnTheProxy());
                default -> {
                    // answered before, so the proxy has it all
                }
            }
        }

        /** The proxy's side of this connection has finished its handshake (its identity is known). */
        private boolean handshakeDoneOnTheProxy() throws Exception {
            Channel channel = proxySide();
            return channel.eventLoop().submit(() -> channel.pipeline().get("identity") == null)
                    .get(5, TimeUnit.SECONDS);
        }

        private Channel proxySide() {
            int port = client.localAddress().getPort();
            return proxy.server().clientConnections().stream()
                    .filter(c -> ((InetSocketAddress) c.remoteAddress()).getPort() == port)
                    .findFirst().orElseThrow(() -> new AssertionError(this + ": no such connection at the proxy"));
        }

        void drainStarted(long t0, long t1, long deadline) {
            this.t0 = t0;
            this.t1 = t1;
            this.deadline = deadline;
        }

        /** What the client does after the drain started, and what it reads. */
        void finish() {
            try {
                switch (state) {
                    case HALF_HEAD, HEAD_AND_HALF_BODY -> {
                        Request r = requests.get(0);
                        pauseUntil(t1 + TimeUnit.MILLISECONDS.toNanos(random.nextInt(300)));
                        client.output().write(r.bytes, split, r.bytes.length - split);
                        client.output().flush();
                        readAnswers(OutputStream.nullOutputStream());
                    }
                    case LATE_REQUEST -> {
                        pauseUntil(t1 + TimeUnit.MILLISECONDS.toNanos(afterDrainMs));
                        Request r = requests.get(0);
                        try {
                            send(r, r.bytes.length);
                        } catch (IOException closedMeanwhile) {
                            // the proxy closed it after the grace: what follows shows it
                        }
                        readAnswers(OutputStream.nullOutputStream());
                    }
                    case HANDSHAKING -> {
                        pauseUntil(t1 + TimeUnit.MILLISECONDS.toNanos(afterDrainMs));
                        try {
                            client = stalled.resume(Duration.ofSeconds(20));
                        } catch (Exception e) {
                            endedAt = System.nanoTime();
                            end = "handshake failed: " + e.getCause();
                            return;
                        }
                        Request r = requests.get(0);
                        send(r, r.bytes.length);
                        readAnswers(OutputStream.nullOutputStream());
                    }
                    case HANDSHAKE_NEVER_ENDS -> {
                        // Watched until well past the later of the two bounds the proxy may close it by.
                        long watch = Math.max(stalled.stalledAt() + HANDSHAKE_TIMEOUT.toNanos(), deadline)
                                + TimeUnit.SECONDS.toNanos(3) - System.nanoTime();
                        end = stalled.closedByServerWithin(Duration.ofNanos(watch)) ? "closed" : "still open";
                        endedAt = System.nanoTime();
                    }
                    case IN_FLIGHT, PIPELINED -> readAnswers(OutputStream.nullOutputStream());
                    case SLOW_READER -> readAnswers(new OutputStream() {
                        @Override
                        public void write(int b) {
                        }

                        @Override
                        public void write(byte[] b, int off, int len) {
                            LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(1500));
                        }
                    });
                    case WEBSOCKET -> tunnel();
                    default -> readAnswers(OutputStream.nullOutputStream());
                }
            } catch (Exception e) {
                if (end == null) {
                    endedAt = System.nanoTime();
                    end = "failed: " + e;
                }
            } finally {
                closeQuietly();
                if (endedAt == 0) {
                    endedAt = System.nanoTime();
                }
            }
        }

        /** Reads answers in order until the connection ends; {@link #end} says how it ended. */
        private void readAnswers(OutputStream sink) throws IOException {
            for (Request r : requests) {
                int first;
                try {
                    first = peek();
                } catch (IOException e) {
                    endedAt = System.nanoTime();
                    end = "closed"; // a reset where no answer was due, or a cut: judged with what was due
                    return;
                }
                if (first < 0) {
                    endedAt = System.nanoTime();
                    end = "closed";
                    return;
                }
                Answer a;
                try {
                    a = read(r, sink);
                } catch (IOException e) {
                    endedAt = System.nanoTime();
                    answers.add(new Answer(r, 0, null, "cut short: " + e));
                    end = "closed";
                    return;
                }
                answers.add(a);
            }
            endedAt = System.nanoTime();
            end = endOfStream();
            endedAt = System.nanoTime();
        }

        /** After the last answer due: "closed", or what else came. */
        private String endOfStream() throws IOException {
            try {
                int b = client.input().read();
                return b < 0 ? "closed" : "a byte after the last answer due: " + (char) b;
            } catch (SocketTimeoutException e) {
                return "still open " + e.getMessage();
            } catch (IOException e) {
                return "closed"; // a reset after the whole answer: the client has all it was sent
            }
        }

        private void tunnel() throws Exception {
            pauseUntil(t1 + TimeUnit.MILLISECONDS.toNanos(random.nextInt(300)));
            try {
                tunnelProblem = echo();
                tunnelEchoedAfterDrain = tunnelProblem == null;
            } catch (IOException e) {
                tunnelProblem = "no echo after the drain started: " + e;
            }
            if (holdTunnel) {
                // Held open: the proxy must cut it at the deadline, not before.
                end = endOfStream();
            } else {
                pauseUntil(t1 + TimeUnit.MILLISECONDS.toNanos(afterDrainMs));
                end = "closed by the client";
            }
            endedAt = System.nanoTime();
        }

        /** Null when a binary message comes back byte-exact through the tunnel. */
        private String echo() throws IOException {
            byte[] payload = new byte[1 + random.nextInt(3000)];
            random.nextBytes(payload);
            client.output().write(ReloadUnderTrafficPropertyTest.maskedBinaryFrame(payload, random.nextInt()));
            client.output().flush();
            byte[] back = ReloadUnderTrafficPropertyTest.readBinaryFrame(client.input());
            return java.util.Arrays.equals(payload, back) ? null : "the echo differs";
        }

        private void send(Request r, int length) throws IOException {
            r.sentAt = System.nanoTime();
            client.output().write(r.bytes, 0, length);
            client.output().flush();
        }

        /** The next byte, left unread: -1 when the connection ends first. */
        private int peek() throws IOException {
            client.input().mark(1);
            int b = client.input().read();
            if (b >= 0) {
                client.input().reset();
            }
            return b;
        }

        /** Reads the answer to {@code r}, checking everything it can. */
        private Answer read(Request r, OutputStream sink) throws IOException {
            PassedOn body = new PassedOn(r.responsePattern, sink);
            MtlsClient.Response response = client.readResponse(body, true);
            String problem = null;
            if (response.status() != 200) {
                problem = "status " + response.status();
            } else if (!r.id.equals(response.header(IntegrityBody.REQUEST_ID))) {
                problem = "the answer to " + response.header(IntegrityBody.REQUEST_ID);
            } else if (!r.sha256.equals(response.header("x-seen-sha256"))) {
                problem = "the backend got another body";
            } else if (body.count() != r.responseLength || body.firstMismatch() >= 0) {
                problem = body.count() + " body bytes of " + r.responseLength + ", first wrong at "
                        + body.firstMismatch();
            } else if (r.chunkedResponse && !String.valueOf(r.responseLength)
                    .equals(response.trailer(IntegrityBody.LENGTH_TRAILER))) {
                problem = "no length trailer";
            }
            return new Answer(r, response.status(), response.header("connection"), problem);
        }

        private boolean cutAtTheDeadline(boolean drained) {
            return !drained && endedAt >= deadline - SLACK;
        }

        /**
         * Judges what the client saw against the README. @return whether the connection was cut at the deadline
         * (something it was promised did not happen, or it was open at the deadline)
         */
        boolean judge(boolean drained, List<String> problems) {
            List<String> mine = new ArrayList<>();
            boolean cut = cutAtTheDeadline(drained);
            long endMs = TimeUnit.NANOSECONDS.toMillis(endedAt - t0);
            switch (state) {
                case IDLE_KEEP_ALIVE -> {
                    if (!"closed".equals(end)) {
                        mine.add("an idle keep-alive connection: " + end);
                    } else if (endedAt - t1 > TimeUnit.SECONDS.toNanos(1) + SLACK) {
                        mine.add("an idle keep-alive connection closed only after " + endMs + " ms");
                    }
                    cut = false;
                }
                case SILENT -> {
                    if (!"closed".equals(end)) {
                        mine.add("a silent connection: " + end);
                    } else if (endedAt < Math.min(t0 + GRACE.toNanos(), deadline) - SLACK) {
                        mine.add("a silent connection closed after " + endMs + " ms, inside the grace");
                    } else if (endedAt > t1 + GRACE.toNanos() + TimeUnit.SECONDS.toNanos(1) + SLACK) {
                        mine.add("a silent connection closed only after " + endMs + " ms");
                    }
                    cut = cut && deadline < t0 + GRACE.toNanos();
                }
                case LATE_REQUEST -> {
                    Request r = requests.get(0);
                    long firstByte = r.sentAt;
                    boolean within = firstByte < t0 + GRACE.toNanos() - TimeUnit.MILLISECONDS.toNanos(400);
                    boolean after = firstByte > t1 + GRACE.toNanos() + TimeUnit.MILLISECONDS.toNanos(500);
                    String when = " (sent " + TimeUnit.NANOSECONDS.toMillis(firstByte - t0) + " ms into the drain)";
                    if (within || (!after && !answers.isEmpty())) {
                        cut = servedOnce(drained, mine, when);
                    } else {
                        if (!answers.isEmpty() || !"closed".equals(end)) {
                            mine.add("a request sent after the grace" + when + ": " + answers + " " + end);
                        }
                        if (arrived(r.id) != 0) {
                            mine.add("a request sent after the grace reached the backend" + when);
                        }
                        cut = cut && deadline < t0 + GRACE.toNanos();
                    }
                }
                case IN_FLIGHT, HALF_HEAD, HEAD_AND_HALF_BODY, HANDSHAKING, SLOW_READER, PIPELINED ->
                    cut = servedOnce(drained, mine, "");
                case HANDSHAKE_NEVER_ENDS -> {
                    // Kept as any connection in its handshake is, until its handshake timeout or the deadline. The
                    // timeout runs from the proxy's accept: after the client's connect, before the proxy's flight.
                    long earliest = stalled.connectedAt() + HANDSHAKE_TIMEOUT.toNanos();
                    long latest = stalled.stalledAt() + HANDSHAKE_TIMEOUT.toNanos();
                    String when = " after " + endMs + " ms; its handshake timeout at "
                            + TimeUnit.NANOSECONDS.toMillis(earliest - t0) + "-"
                            + TimeUnit.NANOSECONDS.toMillis(latest - t0) + " ms, the deadline at "
                            + TimeUnit.NANOSECONDS.toMillis(deadline - t0) + " ms";
                    if (!"closed".equals(end)) {
                        mine.add("a handshake that never ends: " + end + when);
                    } else if (endedAt < Math.min(earliest, deadline) - SLACK) {
                        mine.add("a handshake that never ends closed" + when);
                    } else if (endedAt > Math.min(latest, deadline) + TimeUnit.SECONDS.toNanos(1) + SLACK) {
                        mine.add("a handshake that never ends closed only" + when);
                    }
                    cut = cut && deadline < latest;
                }
                case WEBSOCKET -> {
                    if (tunnelProblem != null && !cut && !(deadline < t1 + TimeUnit.MILLISECONDS.toNanos(300))) {
                        mine.add("a tunnel after the drain started: " + tunnelProblem);
                    }
                    if (holdTunnel) {
                        if (!"closed".equals(end) || !cut) {
                            mine.add("a tunnel held open: " + end + " after " + endMs + " ms, deadline "
                                    + TimeUnit.NANOSECONDS.toMillis(deadline - t0) + " ms, drained " + drained);
                        }
                    } else {
                        cut = cut && deadline < endedAt;
                    }
                }
                default -> throw new AssertionError(state);
            }
            for (String m : mine) {
                problems.add(this + ": " + m);
            }
            return cut;
        }

        /**
         * The first request is answered whole, with Connection: close, then the connection closes; whatever was
         * pipelined behind it is not answered and reaches no backend. Or the deadline cut it.
         * @return whether it was cut
         */
        private boolean servedOnce(boolean drained, List<String> mine, String when) {
            Request first = requests.get(0);
            boolean cut = cutAtTheDeadline(drained);
            Answer a = answers.isEmpty() ? null : answers.get(0);
            if (a == null || a.problem != null) {
                if (!cut) {
                    mine.add(first + when + " was not answered whole: " + (a == null ? end : a.problem)
                            + ", after " + TimeUnit.NANOSECONDS.toMillis(endedAt - t0) + " ms, drained " + drained);
                }
                if (arrived(first.id) > 1) {
                    mine.add(first + " reached the backend " + arrived(first.id) + " times");
                }
            } else {
                cut = false;
                if (arrived(first.id) != 1) {
                    mine.add(first + when + " was answered and reached the backend " + arrived(first.id) + " times");
                }
                boolean headAfterDrain = state != State.IN_FLIGHT && state != State.SLOW_READER
                        && state != State.PIPELINED || first.headAfter(t1);
                if (headAfterDrain && !"close".equalsIgnoreCase(a.connection)) {
                    mine.add(first + when + " was answered without Connection: close");
                }
                if (headAfterDrain && answers.size() > 1) {
                    mine.add("requests pipelined behind " + first.id + " were answered: " + answers.subList(1,
                            answers.size()));
                }
                Answer last = answers.get(answers.size() - 1);
                if (last.problem != null && !cutAtTheDeadline(drained)) {
                    mine.add(last.request + " was cut short: " + last.problem);
                }
                if (!"closed".equals(end) && answers.size() == requests.size()) {
                    mine.add("after the answer: " + end);
                }
            }
            for (int i = Math.max(1, answers.size()); i < requests.size(); i++) {
                if (arrived(requests.get(i).id) != 0) {
                    mine.add(requests.get(i) + ", pipelined and not answered, reached the backend");
                }
            }
            for (int i = 1; i < answers.size(); i++) {
                if (answers.get(i).problem == null && arrived(answers.get(i).request.id) != 1) {
                    mine.add(answers.get(i).request + " was answered and reached the backend "
                            + arrived(answers.get(i).request.id) + " times");
                }
            }
            return cut;
        }

        void closeQuietly() {
            try {
                if (stalled != null) {
                    stalled.close();
                }
                if (client != null) {
                    client.close();
                }
            } catch (IOException ignored) {
                // closing is all that was left
            }
        }

        /** The state and what the client saw, for the run's one-line summary. */
        String summary() {
            return state + (inFlight() && !requests.get(0).headAfter(t1) ? " (answered before the drain)" : "") + "/"
                    + answers.stream().map(a -> a.problem == null ? String.valueOf(a.connection) : "cut").toList()
                    + "/" + end;
        }

        @Override
        public String toString() {
            return "[connection " + index + " " + state + (answeredBefore > 0 ? " after " + answeredBefore
                    + " answers" : "") + (holdTunnel ? " held" : "") + (afterDrainMs > 0 ? " +" + afterDrainMs
                    + " ms" : "") + "]";
        }
    }

    /** Checks an answer's body against its pattern as it streams in, passing it on to {@code sink}. */
    private static final class PassedOn extends BodyPatternCheck {
        private final OutputStream sink;

        PassedOn(int pattern, OutputStream sink) {
            super(IntegrityBody.pattern(pattern));
            this.sink = sink;
        }

        @Override
        protected void passed(long offset, byte[] b, int off, int len) throws IOException {
            sink.write(b, off, len);
        }
    }

    /** The scenario's own clock: a client that acts at a planned time after the drain started. */
    private static void pauseUntil(long nanoTime) {
        for (long left = nanoTime - System.nanoTime(); left > 0; left = nanoTime - System.nanoTime()) {
            LockSupport.parkNanos(left);
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }
}
