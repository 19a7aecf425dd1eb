package dev.mtlsproxy.app.admin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.core.testing.LogCapture;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The admin listener's own limits, apart from what its endpoints answer. */
class AdminServerTest {

    /** Where a test does not look at refusals, timeouts or evictions (the metrics are wired in RunCommand). */
    static final AdminServer.Counters NOT_COUNTED = new AdminServer.Counters(() -> { }, () -> { }, () -> { });


    private static AdminEndpoints endpoints() {
        return new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true, () -> null,
                () -> null, null, Clock.systemUTC());
    }

    @Test
    void aConnectionThatSaysNothingIsClosedAfterTheIdleTimeoutAndTheNextOneIsServed() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                new AdminServer.Limits(Duration.ofMillis(300), Duration.ofSeconds(30), 64), NOT_COUNTED);
                Socket idle = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort())) {
            idle.setSoTimeout(10_000);
            long opened = System.nanoTime();

            assertThat(idle.getInputStream().read()).as("closed by the admin listener").isEqualTo(-1);
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).isGreaterThanOrEqualTo(Duration.ofMillis(300));

            try (Socket used = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort())) {
                used.setSoTimeout(10_000);
                used.getOutputStream().write("GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII));
                InputStream in = used.getInputStream();
                assertThat(new String(in.readAllBytes(), StandardCharsets.US_ASCII)).startsWith("HTTP/1.1 200 OK");
            }
        }
    }

    private static Socket connect(AdminServer server) throws Exception {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort());
        socket.setSoTimeout(5_000);
        return socket;
    }

    /** True when the server closed the connection; a read that times out (the connection still open) fails. */
    private static boolean closedByServer(Socket socket) throws Exception {
        try {
            return socket.getInputStream().read() == -1;
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the connection is still open after " + socket.getSoTimeout() + " ms", e);
        } catch (SocketException e) {
            return true; // reset: the server closed while the client was still writing
        }
    }

    /**
     * Slowloris: a byte every 50 ms is never idle, so the idle timeout never fired and the connection was held for
     * as long as the client liked. Whether the head or the body drips, the whole request must arrive within the
     * request timeout.
     */
    @ParameterizedTest
    @ValueSource(strings = {"GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Drip: ",
        "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 1000\r\n\r\n"})
    void aClientDrippingItsRequestIsClosedAfterTheRequestTimeout(String start) throws Exception {
        Duration requestTimeout = Duration.ofMillis(500);
        AtomicInteger timedOut = new AtomicInteger();
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                new AdminServer.Limits(Duration.ofMinutes(2), requestTimeout, 64),
                new AdminServer.Counters(() -> { }, timedOut::incrementAndGet, () -> { }))) {
            // The server's clock starts when it accepts the connection, so ours starts before connecting: taken
            // after the first write, it lost the connect and the write and saw 499.99 ms once.
            long started = System.nanoTime();
            Socket slow = connect(server);
            OutputStream out = slow.getOutputStream();
            out.write(start.getBytes(StandardCharsets.US_ASCII));
            Thread drip = new Thread(() -> {
                try {
                    while (true) {
                        Thread.sleep(50); // the client's pace is the scenario
                        out.write('a');
                        out.flush();
                    }
                } catch (IOException | InterruptedException e) {
                    // closed by the server, or the test is over
                }
            }, "slowloris");
            drip.setDaemon(true);
            drip.start();
            try {
                assertThat(closedByServer(slow)).isTrue();
                assertThat(Duration.ofNanos(System.nanoTime() - started)).isGreaterThanOrEqualTo(requestTimeout);
                // counted before the close, on the server's loop: visible by the time the client sees the close
                assertThat(timedOut).as("request timeouts counted").hasValue(1);
            } finally {
                drip.interrupt();
                slow.close();
            }
        }
    }

    /**
     * The clock runs while a request arrives (the first one: from the connection opening), not between requests: a
     * scraper keeping its connection for the next scrape is governed by the idle timeout alone, and each later
     * request gets the whole request timeout from its first bytes.
     */
    @Test
    void aKeepAliveConnectionWaitingLongerThanTheRequestTimeoutBetweenRequestsIsServed() throws Exception {
        Duration requestTimeout = Duration.ofMillis(300);
        AtomicInteger timedOut = new AtomicInteger();
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                new AdminServer.Limits(Duration.ofMinutes(2), requestTimeout, 64),
                new AdminServer.Counters(() -> { }, timedOut::incrementAndGet, () -> { }));
                Socket scraper = connect(server)) {
            for (int scrape = 0; scrape < 3; scrape++) {
                if (scrape > 0) {
                    Thread.sleep(requestTimeout.multipliedBy(2).toMillis()); // the pause between scrapes
                }
                scraper.getOutputStream().write("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII));
                assertThat(readResponse(scraper.getInputStream())).as("scrape " + scrape)
                        .startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
            }
            assertThat(timedOut).as("a pause between requests is no request timeout").hasValue(0);
        }
    }

    /** A request and the first bytes of the next, as a pipelining client's one write can carry them. */
    static final String ONE_AND_THE_START_OF_THE_NEXT = "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\nGET /hea";

    /**
     * The clock of a pipelined request starts with its first bytes even when they came in the same read as the end
     * of the request before: it started only at the next read, so a client that stopped there was left to the idle
     * timeout.
     */
    @Test
    void aPipelinedRequestWhoseStartCameWithThePreviousOnesEndMustArriveWithinTheRequestTimeout() throws Exception {
        Duration requestTimeout = Duration.ofMillis(300);
        AtomicInteger timedOut = new AtomicInteger();
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                new AdminServer.Limits(Duration.ofMinutes(2), requestTimeout, 64),
                new AdminServer.Counters(() -> { }, timedOut::incrementAndGet, () -> { }));
                Socket client = connect(server)) {
            client.getOutputStream().write(ONE_AND_THE_START_OF_THE_NEXT.getBytes(StandardCharsets.US_ASCII));
            assertThat(readResponse(client.getInputStream())).startsWith("HTTP/1.1 200 OK\r\n");

            assertThat(closedByServer(client)).as("closed by the request timeout, not the idle timeout").isTrue();
            assertThat(timedOut).as("request timeouts counted").hasValue(1);
        }
    }

    /**
     * With every slot taken, the connection idle longest makes room; one whose next request has started arriving is
     * not idle, even when that request's first bytes came in the same read as the end of the one before (it was
     * counted idle from its answer on, and closed mid-request).
     */
    @Test
    void aConnectionWhosePipelinedRequestHasStartedIsNotClosedToMakeRoom() throws Exception {
        AtomicInteger evicted = new AtomicInteger();
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                new AdminServer.Limits(Duration.ofMinutes(2), Duration.ofSeconds(30), 2),
                new AdminServer.Counters(() -> { }, () -> { }, evicted::incrementAndGet));
                Socket pipelining = connect(server)) {
            pipelining.getOutputStream().write(ONE_AND_THE_START_OF_THE_NEXT.getBytes(StandardCharsets.US_ASCII));
            assertThat(readResponse(pipelining.getInputStream())).startsWith("HTTP/1.1 200 OK\r\n");
            try (Socket idle = connect(server)) {
                assertThat(exchange(server, "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"))
                        .as("a third connection, with both slots taken").startsWith("HTTP/1.1 200 OK\r\n");

                assertThat(closedByServer(idle)).as("the idle one made room").isTrue();
                assertThat(evicted).hasValue(1);
                pipelining.getOutputStream().write("lthz HTTP/1.1\r\nHost: admin\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII));
                assertThat(readResponse(pipelining.getInputStream())).as("the one mid-request is served")
                        .startsWith("HTTP/1.1 200 OK\r\n");
            }
        }
    }

    /**
     * Requests waiting for their answers are held in memory, so a client can queue only so many (Netty's
     * HttpServerCodec allows 128); one more closes the connection. Those behind the first wait for their turn:
     * none reaches an endpoint while the first is unanswered.
     */
    @Test
    void aClientPipeliningMoreRequestsThanTheCapWhileTheFirstWaitsIsClosed() throws Exception {
        List<CompletableFuture<ReloadOutcome>> reloads = new CopyOnWriteArrayList<>();
        AdminEndpoints.Reloader stuck = trigger -> {
            CompletableFuture<ReloadOutcome> reload = new CompletableFuture<>();
            reloads.add(reload);
            return reload;
        };
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"),
                new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true, () -> null,
                        () -> null, stuck, Clock.systemUTC()), NOT_COUNTED);
                Socket client = connect(server)) {
            String reload = "POST /admin/reload HTTP/1.1\r\nHost: admin\r\n\r\n";
            client.getOutputStream().write(reload.repeat(AdminHttpCodec.MAX_PIPELINE_DEPTH)
                    .getBytes(StandardCharsets.US_ASCII));
            await().atMost(Duration.ofSeconds(10)).until(() -> reloads.size() == 1);

            client.getOutputStream().write(reload.getBytes(StandardCharsets.US_ASCII));

            assertThat(closedByServer(client)).isTrue();
            assertThat(reloads).as("the others waited their turn behind the first, which never came").hasSize(1);
        }
    }

    /**
     * A client that pipelines requests and reads none of the answers. Were each answer made as its request was
     * read, every {@code /metrics} page would wait in the connection's outbound buffer (in direct memory, which the
     * mTLS traffic shares) for a reader that never comes: a loop of such requests ran the process out of direct
     * memory. The answers are made one at a time, each once the one before has been written to the socket, so
     * this client holds what the socket buffers take and nothing more; once it reads, every answer arrives whole
     * and in order.
     */
    @Test
    void answersAreMadeAsTheClientTakesThemSoOneThatReadsNoneHoldsNoPileOfThem() throws Exception {
        AtomicInteger scrapes = new AtomicInteger();
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT) {
            @Override
            public String scrape(String contentType) {
                scrapes.incrementAndGet();
                return super.scrape(contentType);
            }
        };
        for (int i = 0; i < 2_000; i++) {
            registry.counter("a.counter.with.a.name.long.enough.to.make.a.page.of.some.size",
                    "label", "value-" + i, "another", "x".repeat(64)).increment();
        }
        int pageBytes = registry.scrape().length();
        scrapes.set(0);
        int pipelined = 60;
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"),
                new AdminEndpoints(registry, () -> true, () -> null, () -> null, null, Clock.systemUTC()),
                NOT_COUNTED);
                Socket client = new Socket()) {
            client.setReceiveBufferSize(4 * 1024);
            client.connect(server.address());
            client.setSoTimeout(10_000);
            client.getOutputStream().write("GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n".repeat(pipelined)
                    .getBytes(StandardCharsets.US_ASCII));

            // Until no answer has been made for half a second: the socket buffers are full, or every answer made.
            AtomicInteger seen = new AtomicInteger(-1);
            await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(500))
                    .until(() -> seen.getAndSet(scrapes.get()) == scrapes.get());
            assertThat(scrapes.get()).as("answers made for a client that read none of them (pages of %d bytes)",
                    pageBytes).isPositive().isLessThan(pipelined);

            InputStream in = client.getInputStream();
            for (int i = 0; i < pipelined; i++) {
                String response = readResponse(in);
                assertThat(response).as("answer " + i).startsWith("HTTP/1.1 200 OK");
                assertThat(response.length()).as("answer " + i).isGreaterThan(pageBytes);
            }
            assertThat(scrapes).hasValue(pipelined);
        }
    }

    /** One keep-alive response: the head, then content-length bytes. */
    private static String readResponse(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            int b = in.read();
            assertThat(b).as("response head so far: " + head).isNotEqualTo(-1);
            head.append((char) b);
        }
        Matcher length = Pattern.compile("(?i)content-length: (\\d+)").matcher(head);
        assertThat(length.find()).isTrue();
        return head + new String(in.readNBytes(Integer.parseInt(length.group(1))), StandardCharsets.US_ASCII);
    }

    /**
     * Over the cap, with every connection waiting for its answer (a reload still running), a new connection is
     * closed as soon as it is accepted: a connection in the middle of an exchange is never closed to make room.
     * Once one of them is answered and waits for its next request, it is the one that makes room for the next probe.
     */
    @Test
    void connectionsOverTheCapAreClosedWhenNoneIsIdleAndTheOpenOnesAreServed() throws Exception {
        int cap = 4;
        AtomicInteger refused = new AtomicInteger();
        AtomicInteger evicted = new AtomicInteger();
        List<CompletableFuture<ReloadOutcome>> reloads = new CopyOnWriteArrayList<>();
        AdminEndpoints.Reloader running = trigger -> {
            CompletableFuture<ReloadOutcome> reload = new CompletableFuture<>();
            reloads.add(reload);
            return reload;
        };
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"),
                new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true, () -> null,
                        () -> null, running, Clock.systemUTC()),
                new AdminServer.Limits(Duration.ofMinutes(2), Duration.ofSeconds(30), cap),
                new AdminServer.Counters(refused::incrementAndGet, () -> { }, evicted::incrementAndGet))) {
            List<Socket> held = new ArrayList<>();
            try {
                for (int i = 0; i < cap; i++) {
                    Socket busy = connect(server);
                    busy.getOutputStream().write("POST /admin/reload HTTP/1.1\r\nHost: admin\r\n\r\n"
                            .getBytes(StandardCharsets.US_ASCII));
                    held.add(busy);
                }
                await().atMost(Duration.ofSeconds(10)).until(() -> reloads.size() == cap);

                try (Socket extra = connect(server)) {
                    assertThat(closedByServer(extra)).as("connection " + (cap + 1)).isTrue();
                }
                assertThat(refused).as("refusals counted").hasValue(1);
                assertThat(evicted).as("a busy connection is never evicted").hasValue(0);

                Socket answered = held.get(2);
                reloads.get(2).complete(new ReloadOutcome(true, 2, null, List.of()));
                assertThat(readResponse(answered.getInputStream())).startsWith("HTTP/1.1 200 OK\r\n");

                assertThat(exchange(server, "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"))
                        .startsWith("HTTP/1.1 200 OK\r\n");
                assertThat(closedByServer(answered)).as("the idle connection made room").isTrue();
                assertThat(refused).as("nothing more refused").hasValue(1);
                assertThat(evicted).as("evictions counted").hasValue(1);
                reloads.get(0).complete(new ReloadOutcome(true, 3, null, List.of()));
                assertThat(readResponse(held.get(0).getInputStream())).as("the busy ones were left alone")
                        .startsWith("HTTP/1.1 200 OK\r\n");
            } finally {
                for (Socket socket : held) {
                    socket.close();
                }
            }
        }
    }

    /**
     * 64 clients that each sent one request and keep their connection (or that connected and sent nothing) held
     * every slot for the two minutes of the idle timeout, and a Prometheus scrape or a kubelet probe was refused
     * all that time. Now the connection idle longest is closed to make room, as nginx does when its
     * worker_connections run out; the others stay open and are served. Each such close is counted (the log line
     * saying so is rate-limited), and it is no refusal.
     */
    @Test
    void whenIdleKeepAliveConnectionsHoldEverySlotANewScrapeTakesTheSlotOfTheOneIdleLongest() throws Exception {
        AtomicInteger refused = new AtomicInteger();
        AtomicInteger evicted = new AtomicInteger();
        int cap = AdminServer.Limits.DEFAULT.maxConnections();
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                new AdminServer.Counters(refused::incrementAndGet, () -> { }, evicted::incrementAndGet))) {
            List<Socket> held = new ArrayList<>();
            try {
                for (int i = 0; i < cap; i++) {
                    Socket keptAlive = connect(server);
                    keptAlive.getOutputStream().write("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"
                            .getBytes(StandardCharsets.US_ASCII));
                    assertThat(readResponse(keptAlive.getInputStream())).startsWith("HTTP/1.1 200 OK\r\n");
                    held.add(keptAlive);
                }

                assertThat(exchange(server, "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"))
                        .startsWith("HTTP/1.1 200 OK\r\n");

                assertThat(closedByServer(held.get(0))).as("the connection idle longest was closed").isTrue();
                assertThat(evicted).as("evictions counted").hasValue(1);
                assertThat(refused).as("nothing refused").hasValue(0);
                Socket next = held.get(1);
                next.getOutputStream().write("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII));
                assertThat(readResponse(next.getInputStream())).as("the others are still served")
                        .startsWith("HTTP/1.1 200 OK\r\n");
            } finally {
                for (Socket socket : held) {
                    socket.close();
                }
            }
        }
    }

    /** One request on its own connection, as written; the whole answer, up to the server's close. */
    private static String exchange(AdminServer server, String request) throws Exception {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort())) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
        }
    }

    @Test
    void aMethodAPathDoesNotTakeIs405WithTheMethodsItTakesAndAnUnknownPathIs404WhateverTheMethod()
            throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED)) {
            for (String method : new String[] {"POST", "PUT", "DELETE", "OPTIONS"}) {
                assertThat(exchange(server, method + " /healthz HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n"
                        + "Connection: close\r\n\r\n"))
                        .as(method).startsWith("HTTP/1.1 405 Method Not Allowed\r\n").contains("\r\nallow: GET, HEAD\r\n");
            }
            assertThat(exchange(server, "POST /nowhere HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n"
                    + "Connection: close\r\n\r\n")).startsWith("HTTP/1.1 404 Not Found\r\n");
        }
    }

    /**
     * After a malformed request the codec discards whatever follows on the connection: keeping it open left the
     * client waiting for the idle timeout with nothing to be answered.
     */
    @Test
    void aMalformedRequestIsAnswered400AndTheConnectionClosed() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED)) {
            String oversizedHead = "GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Big: " + "a".repeat(20_000)
                    + "\r\n\r\n";
            String bothFramings = "POST /healthz HTTP/1.1\r\nHost: admin\r\nContent-Length: 5\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

            for (String request : new String[] {oversizedHead, bothFramings}) {
                String answer = exchange(server, request);

                assertThat(answer).startsWith("HTTP/1.1 400 Bad Request\r\n").contains("\r\nconnection: close\r\n")
                        .endsWith("bad request\n");
            }
        }
    }

    /**
     * A page that fails in a way nobody foresaw (here the certificate inventory throws) is answered 500 and logged
     * with its stack trace, and the connection serves the next request. It used to close without a word: found when
     * /admin/config of every config with a time-boxed grant answered nothing.
     */
    @Test
    void anUnforeseenFailureIsAnswered500AndLoggedAndTheConnectionServesTheNextRequest() throws Exception {
        AdminEndpoints failing = new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true,
                () -> null, () -> {
                    throw new IllegalStateException("the inventory broke");
                }, null, Clock.systemUTC());
        try (LogCapture log = LogCapture.of(AdminEndpoints.class);
                AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), failing, NOT_COUNTED)) {
            String answers = exchange(server, "GET /admin/certs HTTP/1.1\r\nHost: admin\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");

            assertThat(answers).startsWith("HTTP/1.1 500 Internal Server Error\r\n")
                    .contains("internal error: the proxy's log says more\n").contains("HTTP/1.1 200 OK\r\n")
                    .endsWith("ok\n");
            String line = log.await("event=admin_failed");
            assertThat(line).contains("path=\"/admin/certs\"", "the inventory broke");
            assertThat(log.thrownWith(line)).isEqualTo(IllegalStateException.class.getName());
        }
    }

    /**
     * A site that rebinds its DNS name to the listener's address makes the operator's browser read the admin pages as
     * its own origin: Host is the site's name and the request says same-origin. Found by a hostile audit: only the
     * reload was refused to pages, so /admin/config, /admin/certs and /metrics could be read this way.
     */
    @Test
    void aPageOnANameReboundToTheListenerCannotReadItsPagesWhileLinksAndToolsAreServed() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED)) {
            for (String path : List.of("/metrics", "/admin/config", "/admin/certs", "/healthz")) {
                assertThat(exchange(server, "GET " + path + " HTTP/1.1\r\nHost: rebound.example:9901\r\n"
                        + "Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n"
                        + "Connection: close\r\n\r\n")).as(path)
                        .startsWith("HTTP/1.1 403 Forbidden\r\n").endsWith("requests from web pages are refused\n");
            }
            for (String site : List.of("cross-site", "same-site", "none")) {
                assertThat(exchange(server, "GET /healthz HTTP/1.1\r\nHost: proxy.example:9901\r\nSec-Fetch-Site: "
                        + site + "\r\nSec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n")).as(site)
                        .startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
            }
        }
    }

    @Test
    void anAbsoluteFormTargetIsServedLikeItsPath() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED)) {
            assertThat(exchange(server, "GET http://admin/healthz?probe=1 HTTP/1.1\r\nHost: admin\r\n"
                    + "Connection: close\r\n\r\n")).startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
        }
    }

    /** An HTTP/1.0 client keeps the connection only when the answer says so (RFC 9112 9.3); it did not. */
    @Test
    void anHttp10RequestAskingForKeepAliveIsAnsweredWithConnectionKeepAlive() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED);
                Socket client = connect(server)) {
            client.getOutputStream().write("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
            assertThat(readResponse(client.getInputStream())).startsWith("HTTP/1.1 200 OK\r\n")
                    .contains("\r\nconnection: keep-alive\r\n");

            client.getOutputStream().write("GET /readyz HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            assertThat(readResponse(client.getInputStream())).contains("\r\nconnection: close\r\n");
            assertThat(closedByServer(client)).isTrue();
        }
    }

    /** What nginx refuses and Netty's decoder passes: the listener answered /heal\0thz 404 and HTTP/2.0 as 1.1. */
    @Test
    void aControlCharacterInTheTargetIs400AndAnotherHttpVersion505BothClosed() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED)) {
            assertThat(exchange(server, "GET /heal\u0000thz HTTP/1.1\r\nHost: admin\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"))
                    .startsWith("HTTP/1.1 400 Bad Request\r\n").contains("\r\nconnection: close\r\n")
                    .containsOnlyOnce("HTTP/1.1 ");
            assertThat(exchange(server, "GET /healthz HTTP/2.0\r\nHost: admin\r\n\r\n"))
                    .startsWith("HTTP/1.1 505 HTTP Version Not Supported\r\n")
                    .contains("\r\nconnection: close\r\n");
        }
    }

    /**
     * RFC 9112 9.6: after a request that closes the connection, the server acts on nothing more it received: a reload
     * pipelined after {@code Connection: close} ran, though it was never answered.
     */
    @Test
    void aRequestPipelinedAfterOneThatClosesTheConnectionIsNotActedOn() throws Exception {
        AtomicInteger reloads = new AtomicInteger();
        AdminEndpoints.Reloader counting = trigger -> {
            reloads.incrementAndGet();
            return CompletableFuture.completedFuture(new ReloadOutcome(true, 2, null, List.of()));
        };
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"),
                new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true, () -> null,
                        () -> null, counting, Clock.systemUTC()), NOT_COUNTED)) {
            String answer = exchange(server, "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
                    + "POST /admin/reload HTTP/1.1\r\nHost: admin\r\n\r\n");

            assertThat(answer).startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
            assertThat(reloads).as("reloads run").hasValue(0);
        }
    }

    /**
     * A body over the 8 KiB cap was answered 413 by the aggregator the moment it was announced: ahead of the answer
     * to a reload pipelined before it, and with the connection kept but the request timeout still running, so the
     * idle connection was closed later as a slow request. Now it is answered in its turn, and closed, as nginx does.
     */
    @Test
    void aBodyOverTheCapIsAnswered413InItsTurnAndTheConnectionClosed() throws Exception {
        List<CompletableFuture<ReloadOutcome>> reloads = new CopyOnWriteArrayList<>();
        AdminEndpoints.Reloader running = trigger -> {
            CompletableFuture<ReloadOutcome> reload = new CompletableFuture<>();
            reloads.add(reload);
            return reload;
        };
        AtomicInteger timedOut = new AtomicInteger();
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"),
                new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true, () -> null,
                        () -> null, running, Clock.systemUTC()),
                new AdminServer.Limits(Duration.ofMinutes(2), Duration.ofMillis(500), 64),
                new AdminServer.Counters(() -> { }, timedOut::incrementAndGet, () -> { }));
                Socket client = connect(server)) {
            client.getOutputStream().write(("POST /admin/reload HTTP/1.1\r\nHost: admin\r\n\r\n"
                    + "POST /admin/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 9000\r\n\r\n" + "a".repeat(9000))
                    .getBytes(StandardCharsets.US_ASCII));
            await().atMost(Duration.ofSeconds(10)).until(() -> reloads.size() == 1);
            reloads.get(0).complete(new ReloadOutcome(true, 2, null, List.of()));

            assertThat(readResponse(client.getInputStream())).as("the reload's answer first")
                    .startsWith("HTTP/1.1 200 OK\r\n").contains("\"generation\" : 2");
            assertThat(readResponse(client.getInputStream())).startsWith("HTTP/1.1 413 Request Entity Too Large\r\n")
                    .contains("\r\nconnection: close\r\n");
            assertThat(closedByServer(client)).isTrue();
            assertThat(timedOut).as("no request timeout").hasValue(0);
        }
    }

    /**
     * An expectation other than 100-continue is ignored, as nginx ignores it: Netty's aggregator answered 417 out of
     * turn and left the request timeout running on a connection it kept.
     */
    @Test
    void anExpectationOtherThan100ContinueIsIgnored() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(), NOT_COUNTED);
                Socket client = connect(server)) {
            client.getOutputStream().write(("POST /healthz HTTP/1.1\r\nHost: admin\r\nExpect: something-else\r\n"
                    + "Content-Length: 3\r\n\r\nabcGET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));

            assertThat(readResponse(client.getInputStream())).startsWith("HTTP/1.1 405 Method Not Allowed\r\n");
            assertThat(readResponse(client.getInputStream())).startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
        }
    }
}
