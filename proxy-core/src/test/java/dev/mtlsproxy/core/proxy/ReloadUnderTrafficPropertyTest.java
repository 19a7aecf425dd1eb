package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.PolicyMode;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.backend.Endpoint;
import dev.mtlsproxy.core.proxy.ReadmePolicyModel.Verdict;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Call;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRoute;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRule;
import dev.mtlsproxy.core.proxy.RoutingScenarios.NamedIdentity;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Workload;
import dev.mtlsproxy.core.testing.BodyPatternCheck;
import dev.mtlsproxy.core.testing.BufferLeaks;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import io.netty.util.ResourceLeakDetector;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Hot reload under traffic, end to end, as a generated sequence: one proxy in front of three real backends, seven
 * real mTLS clients (the six of {@link RoutingScenarios} and a partner whose CA is trusted now and then), and 20 to 40
 * reloads, each to a mutated configuration (routes added and removed, grants added and removed, a rule's methods and
 * paths changed, a backend's endpoints or health check changed, a backend added or removed, a client's certificate
 * deny-listed or forgiven, the partner CA removed or added) or to one that cannot be built (a truncated server
 * certificate, a CA bundle that is not there, a moved listener), whose mutations must then change nothing. Next to
 * half of the reloads that succeed, an endpoint's {@code /health} starts or stops failing, just before the reload
 * (the old checks may be counting it as their verdicts are handed over) or just after it.
 *
 * <p>Health is judged from the README's "Health at start-up and reload": right after a reload, strictly wherever
 * the README makes each verdict certain (no check; the same endpoint keeping its verdict under a check whose answer
 * has not changed; a new endpoint, or another question, whose first result agrees with the verdict it starts from),
 * down to the {@code backend_healthy_endpoints} gauge and the absence of any {@code event=backend_health} line.
 * Elsewhere the test waits out the README's bound (the thresholds' worth of checks an {@code interval} apart) and
 * the gauge, then judges strictly: requests go only to endpoints in rotation, and a backend with none answers 503.
 * Leaving rotation closes nothing: a tunnel stays open for as long as its upgrade request is allowed.
 *
 * <p>After each reload returns, a burst of requests, some with bodies, on kept-alive and new connections, is judged
 * by a model of the configuration that shares no code with the proxy: {@link ReadmePolicyModel} for the status, the
 * target and the Host, the test's own backend table for which real backend must receive it, and the README's
 * "Reload and shutdown" for everything else: a refused certificate gets no answer, and an open connection whose
 * certificate the reload refuses is closed by it; a reload that fails leaves the generation, the gauge and every
 * answer as they were and is counted with its reason.
 *
 * <p>Across each reload, traffic that lasts: up to two requests of a route of their own whose bodies are still on
 * their way (hundreds of KiB to a few MiB, up, down or both, with Content-Length or chunked, some behind
 * {@code Expect: 100-continue}) must be answered as the configuration that read their head says, both bodies
 * arriving whole and byte-exact (SHA-256 at the backend, the pattern at the client), or be cut only by a reload
 * that refuses their certificate; and WebSocket tunnels through another route must stay open and echo byte-exact
 * while the configuration serving still allows their upgrade request, and be closed, with the README's log line,
 * when it no longer does, as they open if their 101 comes after the reload. Towards the end of a sequence that has
 * not had one of these three yet (a tunnel kept across a reload, one closed by it, one closed as it opens), a tunnel
 * is opened, and its grant kept or taken away, so that it has.
 *
 * <p>Next to two reloads in five, an endpoint stops or one stopped starts again on the same port, before the reload,
 * while it is built or after it. Half the stops are as a killed process's (its listening socket and every open
 * connection closed: new connections are refused), half graceful, as nginx's on {@code SIGQUIT} or Envoy's drain
 * ({@link TestBackend#stopGracefully}: new connections refused, idle keep-alive connections closed, every exchange
 * under way, tunnels included, served to its end); every sequence has both, and a graceful stop of an endpoint while it
 * serves a long download made for the purpose (the stop comes once the endpoint is seen serving it), which must arrive
 * whole. An endpoint stops in no step that takes away the grant of an upgrade pending on it: that upgrade is the
 * reload's to close as it opens. The README's "Retries and failover" and "Backend failures" judge the requests: one
 * whose backend has an endpoint in rotation that is up is answered 200 by such an endpoint, whatever stopped ones it
 * tried first; one whose endpoints in rotation are all stopped gets 502, and 503 once the check has taken them out;
 * nothing is ever received by a stopped endpoint. A stopped endpoint leaves rotation as its check fails (a refused
 * connection fails any check), and one started again is back, in the {@code backend_healthy_endpoints} gauge, within
 * the check's thresholds and the backend's {@code coolDown} (passive health: an endpoint stopped but still in rotation
 * may be cooling down, so the gauge may count it or not). Requests, transfers and tunnels on an endpoint as it is
 * killed are cut: a 502 while nothing of the answer came back, else a closed connection, never a 200 with less than the
 * body; a bodiless idempotent request may arrive twice, the second time elsewhere. Those on an endpoint as it stops
 * gracefully are answered whole, each of them (the endpoint tells which it was serving); a request that went out on an
 * idle connection as the endpoint closed it is sent again elsewhere when bodiless and idempotent, else answered 502,
 * and never cut. A tunnel whose endpoint was killed is closed, and one whose upgrade was still pending there is
 * answered 502; every other tunnel still leads to the endpoint it opened on, which TestBackend's {@code /ws} tells in
 * its 101 and when asked.
 *
 * <p>Meanwhile two clients keep calling without pause; each of their requests must be answered whole, as one of the
 * configurations in force while it was on its way would answer it (no 5xx but the 503 of a backend without an
 * endpoint in rotation and the 502 of one whose endpoints in rotation are stopped, which are also accepted, as is
 * any endpoint of the backend, while its endpoints' health is settling), or cut only when one of those refused its
 * certificate or an endpoint it may have been on was killed meanwhile.
 *
 * <p>Afterwards: no request reached a backend that the model did not send there, the backends no longer configured
 * get no more health checks, the generation gauge is the number of successful reloads plus one, and no buffer leaked.
 *
 * <p>The sequence comes from one seed, printed with every failure; {@code -Dmtlsproxy.test.seed=N} runs it again (the
 * background clients' interleaving is the scheduler's) and {@code -Dmtlsproxy.test.seed=random} a new one.
 */
class ReloadUnderTrafficPropertyTest {

    static final long SEED = RoutePolicyPropertyTest.seedOf(System.getProperty("mtlsproxy.test.seed", "1"));

    /** A client of another CA, trusted only while the configuration has the {@code partners} anchor. */
    static final Workload PARTNER = new Workload("partner", "spiffe://partner.test/ns/acme/sa/client", null);
    static final String PARTNERS = "partners";
    static final List<String> BACKEND_NAMES = List.of("alpha", "beta", "gamma");
    /**
     * Checks frequent enough that a check left running after its backend went is seen within the test, and patient
     * enough that a machine busy with the traffic never fails one by its timeout: only the model fails them.
     */
    static final List<HealthCheckConfig> CHECKS = List.of(
            new HealthCheckConfig("/health", Duration.ofMillis(100), Duration.ofSeconds(5), 1, 1),
            new HealthCheckConfig("/healthz", Duration.ofMillis(150), Duration.ofSeconds(5), 2, 3),
            new HealthCheckConfig("/health", Duration.ofMillis(200), Duration.ofSeconds(5), 2, 2));
    /** The outcome of a request served by one endpoint while another one in rotation is stopped. */
    static final String FAILOVER = "200 with an endpoint in rotation stopped";
    static final String HEALTH_CHECK_AGENT = "mtls-proxy-health-check";
    static final java.util.regex.Pattern CROSSING = java.util.regex.Pattern.compile(
            "event=backend_health backend=(\\S+) endpoint=127\\.0\\.0\\.1:(\\d+) ");
    /**
     * Every backend's passive cool-down: a stopped endpoint that refused a connection gets no requests for this long
     * while another is available. Short, so that an endpoint started again is back within a step.
     */
    static final Duration COOL_DOWN = Duration.ofMillis(500);
    /** The largest body of a transfer: trickled, about a second of a backend's time. */
    static final int LARGEST_TRANSFER = 256 * 1024 + 3 * 1024 * 1024;
    /** Beyond the README's thresholds x interval: a check's own round trip, and the loops' scheduling. */
    static final Duration SETTLE_SLACK = Duration.ofMillis(300);
    /** How late, past that, a busy machine may show a settled verdict before it counts as wrong. */
    static final Duration LATE = Duration.ofSeconds(3);
    /**
     * Two routes of their own, for the traffic that needs a backend path of its own: large and chunked bodies at
     * {@code /integrity/} (which hashes what it receives and answers a body of a requested size), and WebSocket
     * upgrades at {@code /ws} (an echo). No generated request names these hosts, so they only meet the routes
     * above in the model's choice of the most specific host.
     */
    static final String STREAM_HOST = "stream.example.test";
    static final String WS_HOST = "ws.example.test";
    static final Set<String> OWN_HOSTS = Set.of(STREAM_HOST, WS_HOST);

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();

    private final List<TestBackend> endpoints = new ArrayList<>();
    private final Map<String, X509Bundle> certificates = new HashMap<>();
    private final Map<String, SSLContext> contexts = new HashMap<>();
    private final Map<String, String> fingerprints = new HashMap<>();
    private final Arrivals arrivals = new Arrivals();
    private final Failures failures = new Failures();
    /** Every configuration that was made to serve, in order; index i is generation i + 1. */
    private final List<World> served = new CopyOnWriteArrayList<>();
    /** The newest configuration a reload is building or has made to serve. */
    private volatile int attempting;
    /** The configuration serving: every request sent from now on is judged by it. */
    private volatile int serving;
    /**
     * Even while the model is sure of every endpoint's verdict; odd while a health change settles (window
     * {@code (epoch - 1) / 2}). A request answered within one epoch that is even is judged strictly.
     */
    private final AtomicInteger healthEpoch = new AtomicInteger();
    /** Per health change: per generation index, per backend, the endpoints whose verdict is open meanwhile. */
    private final List<Window> windows = new CopyOnWriteArrayList<>();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Map<String, Integer> outcomes = new ConcurrentHashMap<>();
    /**
     * The endpoints stopped now; and how often each has been killed, so that a tunnel knows its own was (a graceful
     * stop leaves a tunnel open: it is an exchange under way).
     */
    private final Set<Integer> stopped = ConcurrentHashMap.newKeySet();
    private final java.util.concurrent.atomic.AtomicIntegerArray kills =
            new java.util.concurrent.atomic.AtomicIntegerArray(3);
    /**
     * The case tags of the requests an endpoint was serving when it stopped gracefully, tunnels aside (judged as
     * tunnels): each is answered whole.
     */
    private final Set<String> underGracefulStop = ConcurrentHashMap.newKeySet();
    /**
     * How each background request and transfer ended, by case tag: {@code whole} (a 200, its body whole),
     * {@code cut by refusal} (closed by a reload that refuses its certificate), else what it got.
     */
    private final Map<String, String> ends = new ConcurrentHashMap<>();
    private Path partnersCa;
    /** What the proxy logs when a reload closes an open connection. */
    private LogCapture closes;
    /** What the proxy logs when an endpoint crosses a threshold: {@code event=backend_health}. */
    private LogCapture crossings;

    /** What a generation is configured with, in the test's own terms. */
    record Pool(List<Integer> endpoints, HealthCheckConfig check) {
    }

    /**
     * A health change, while it settles: per generation index, per backend, the endpoints whose active verdict is
     * open; and the endpoints stopped or started meanwhile (any backend's), which may be up or down: of those,
     * {@code killed} ones may cut a request or tunnel under way, {@code drained} ones (stopped gracefully) may have
     * closed the idle connection a request went out on.
     */
    record Window(Map<Integer, Map<String, Set<Integer>>> health, Set<Integer> stopping, Set<Integer> killed,
            Set<Integer> drained) {
    }

    /** What the model is not sure of while a request was on its way: see {@link Window}. */
    record Open(Map<String, Set<Integer>> health, Set<Integer> stopping, Set<Integer> killed, Set<Integer> drained) {
        static final Open NONE = new Open(Map.of(), Set.of(), Set.of(), Set.of());
    }

    /**
     * What a generation is configured with, and what the endpoints' {@code /health} answers while it serves:
     * {@code failing} answer 503 there ({@link TestBackend#healthy}); every other path of theirs answers 200. The
     * endpoints in {@code down} are stopped ({@link TestBackend#stopWithConnections}): connecting to them is refused,
     * so every check of theirs fails too.
     */
    record World(List<GenRoute> routes, Map<String, String> backendOf, Map<String, Pool> backends,
            boolean partnersTrusted, Set<String> denyListed, Set<Integer> failing, Set<Integer> down) {

        boolean refuses(Workload client) {
            return denyListed.contains(client.name()) || client == PARTNER && !partnersTrusted;
        }

        World withFailing(Set<Integer> replaced) {
            return new World(routes, backendOf, backends, partnersTrusted, denyListed, Set.copyOf(replaced), down);
        }

        World withDown(Set<Integer> replaced) {
            return new World(routes, backendOf, backends, partnersTrusted, denyListed, failing, Set.copyOf(replaced));
        }

        /**
         * Whether endpoint {@code i}'s check passes while {@code health} holds: TestBackend fails {@code /health}
         * only, and only when told; a stopped endpoint fails any check, refusing its connection.
         */
        static boolean passes(int i, HealthCheckConfig check, World health) {
            return !health.down().contains(i) && (!check.path().equals("/health") || !health.failing().contains(i));
        }

        /**
         * The backend's endpoints in rotation once its checks have settled: all of them without a check, else those
         * that pass it (the README: an endpoint leaves after {@code unhealthyThreshold} failures in a row and comes
         * back after {@code healthyThreshold} passes, and a new one's first check decides).
         */
        List<Integer> inRotation(String backend) {
            Pool p = backends.get(backend);
            return p.check() == null ? p.endpoints()
                    : p.endpoints().stream().filter(i -> passes(i, p.check(), this)).toList();
        }

        /** The README's answer, and the endpoints one of which must receive it; null for a refused certificate. */
        Expected expect(Call call) {
            return expect(call, Open.NONE);
        }

        /**
         * As {@link #expect(Call)}, while the endpoints in {@code open.health()} (per backend) may be in rotation or
         * not, and those in {@code open.stopping()} up or down: the model is only sure of a verdict once a change has
         * settled. A forwarded request then goes to an endpoint in rotation or one of those, and gets the README's
         * 503 (no endpoint passing its active health check) unless an endpoint the model is sure of is in rotation.
         *
         * <p>A stopped endpoint refuses the connection, and the README's "Retries and failover" sends the request to
         * the next endpoint in rotation, each tried once: it is answered by an endpoint that is up, or 502 when every
         * endpoint in rotation refused it ("Backend failures"). An endpoint killed while a request is on it cuts the
         * request: a 502 while nothing of the answer came back (a bodiless GET, HEAD, PUT or DELETE is sent again and
         * may still be answered), else a closed connection; never a 200 with part of the body. An endpoint stopped
         * gracefully finishes every exchange under way, and closes only idle connections: a request that went out on
         * one of those as it closed is sent again when bodiless and idempotent (on a new connection, refused, then on
         * another endpoint: "Retries and failover"), else answered 502; nothing is cut.
         */
        Expected expect(Call call, Open open) {
            if (refuses(call.client())) {
                return null;
            }
            Verdict v = ReadmePolicyModel.judge(routes, RoutingScenarios.IDENTITIES, call, Instant.now());
            if (v.route() == null) {
                return new Expected(v, List.of(), false, false, false, false, false, false);
            }
            String backend = backendOf.get(v.route());
            List<Integer> in = inRotation(backend);
            Set<Integer> unsure = open.health().getOrDefault(backend, Set.of());
            Set<Integer> stopping = open.stopping();
            Set<Integer> either = new TreeSet<>(in);
            either.addAll(unsure);
            boolean surelyIn = in.stream().anyMatch(i -> !unsure.contains(i));
            List<Integer> up = either.stream().filter(i -> !down.contains(i) || stopping.contains(i)).toList();
            boolean surelyServed = in.stream().anyMatch(i -> !unsure.contains(i) && !down.contains(i)
                    && !stopping.contains(i));
            boolean mayBeRefused = either.stream().anyMatch(i -> down.contains(i) || stopping.contains(i));
            boolean mayBeCut = either.stream().anyMatch(open.killed()::contains);
            boolean mayBeRaced = either.stream().anyMatch(open.drained()::contains);
            boolean failover = surelyServed && in.stream().anyMatch(down::contains);
            return new Expected(v, up, !up.isEmpty(), !surelyIn, !surelyServed && mayBeRefused, mayBeCut, mayBeRaced,
                    failover);
        }

        String describe() {
            return RoutingScenarios.describe(routes) + "\nbackend of each route: " + new TreeMap<>(backendOf)
                    + "\nbackends: " + new TreeMap<>(backends) + "\npartner CA trusted: " + partnersTrusted
                    + "\ndeny-listed: " + new TreeSet<>(denyListed) + "\n/health failing at endpoints: "
                    + new TreeSet<>(failing) + "\nstopped endpoints: " + new TreeSet<>(down);
        }
    }

    /**
     * The policy's verdict and, when it forwards, what health and stopped endpoints make of it: a 200 from one of
     * {@code endpoints} when {@code mayForward}, the README's 503 when {@code mayBeUnavailable} (both only while
     * health settles), its 502 when {@code mayFailToConnect} (every endpoint in rotation may be down) or
     * {@code mayBeCut} (an endpoint the request may be on was killed meanwhile, which may also close the
     * connection) or {@code mayBeRaced} for a request the proxy does not send twice (an endpoint it may have gone
     * to stopped gracefully, closing its idle connections); {@code failover} when an endpoint in rotation is down and
     * another one up serves it for certain.
     */
    record Expected(Verdict verdict, List<Integer> endpoints, boolean mayForward, boolean mayBeUnavailable,
            boolean mayFailToConnect, boolean mayBeCut, boolean mayBeRaced, boolean failover) {

        /**
         * Null when {@code status} is one the README gives, else what differs. {@code sentAgain}: the proxy sends
         * the request once more when the connection it went out on closes before an answer (bodiless, idempotent).
         */
        String statusProblem(int status, boolean sentAgain) {
            int policy = verdict.status();
            if (policy != 200) {
                return status == policy ? null : "got " + status + ", the README says " + policy;
            }
            if (status == 200 && mayForward || status == 503 && mayBeUnavailable
                    || status == 502 && (mayFailToConnect || mayBeCut || mayBeRaced && !sentAgain)) {
                return null;
            }
            List<String> may = new ArrayList<>();
            if (mayForward) {
                may.add("200");
            }
            if (mayBeUnavailable) {
                may.add("503 (no endpoint of its backend passes its health check)");
            }
            if (mayFailToConnect || mayBeCut || mayBeRaced && !sentAgain) {
                may.add("502 (" + (mayBeCut ? "an endpoint it may be on was killed" : mayFailToConnect
                        ? "every endpoint of its backend in rotation refuses connections"
                        : "an endpoint stopped gracefully and closed the idle connection it went out on") + ")");
            }
            return "got " + status + ", the README says " + String.join(" or ", may);
        }

        /** Whether the request is forwarded for certain; false when it is certainly refused or health may have it. */
        boolean forwarded() {
            return verdict.status() == 200 && mayForward && !mayBeUnavailable && !mayFailToConnect && !mayBeCut
                    && !mayBeRaced;
        }

        /** The status of a request the policy lets through, that the model is sure is not forwarded. */
        int unforwarded() {
            return verdict.status() != 200 ? verdict.status() : mayBeUnavailable ? 503 : 502;
        }
    }

    @Test
    @Timeout(120)
    void everyRequestIsAnsweredAsTheConfigurationInForceSaysAndAFailedReloadChangesNothing() throws Exception {
        for (int i = 0; i < 3; i++) {
            endpoints.add(i == 0 ? fixture.backend() : TestBackend.start());
        }
        X509Bundle partnerRoot = TestPki.newRoot("partner root");
        partnersCa = fixture.pki().writeCa("partners-ca.pem", partnerRoot);
        for (Workload w : RoutingScenarios.WORKLOADS) {
            certificates.put(w.name(), fixture.pki().client(w.spiffeId(),
                    b -> w.dnsSan() == null ? b : b.addSanDnsName(w.dnsSan())));
        }
        certificates.put(PARTNER.name(), TestPki.clientOf(partnerRoot, PARTNER.spiffeId()));
        for (Map.Entry<String, X509Bundle> c : certificates.entrySet()) {
            contexts.put(c.getKey(), MtlsClient.clientContext(fixture.pki().root(), c.getValue()));
            fingerprints.put(c.getKey(), sha256(c.getValue().getCertificate().getEncoded()));
        }
        Random random = new Random(SEED);
        List<GenRoute> routes = new ArrayList<>(RoutingScenarios.routes(random));
        routes.add(ownRoute(random, STREAM_HOST));
        routes.add(ownRoute(random, WS_HOST));
        World first = new World(List.copyOf(routes), new HashMap<>(), new HashMap<>(), true, Set.of(), Set.of(),
                Set.of());
        first.backends().put("alpha", new Pool(List.of(0), CHECKS.get(0)));
        first.backends().put("beta", new Pool(List.of(1, 2), null));
        first.routes().forEach(r -> first.backendOf().put(r.name(), random.nextBoolean() ? "alpha" : "beta"));
        served.add(first);

        List<Thread> load = new ArrayList<>();
        try (LogCapture leaks = LogCapture.of(ResourceLeakDetector.class);
                LogCapture closed = LogCapture.of(Reverification.class);
                LogCapture verdicts = LogCapture.of(Endpoint.class)) {
            closes = closed;
            crossings = verdicts;
            RunningProxy proxy = fixture.start(builder(first));
            ProxyConfig base = proxy.config();
            for (int t = 0; t < 2; t++) {
                Random own = new Random(SEED * 31 + t);
                String name = "load-" + t;
                Thread thread = new Thread(() -> keepCalling(own, name), name);
                thread.start();
                load.add(thread);
            }
            Sequence sequence = new Sequence(proxy, base, random);
            try {
                sequence.run(20 + random.nextInt(21));
                sequence.last();
            } catch (Exception | AssertionError e) {
                throw new AssertionError(seed("the sequence stopped") + "\n" + failures.all(), e);
            } finally {
                sequence.closeConnections();
                running.set(false);
                for (Thread t : load) {
                    t.join(30_000);
                }
            }
            assertThat(failures.all()).as(seed("what the model and the proxy disagree on")).isEmpty();
            // nginx and Envoy backends stopping gracefully finish what they are serving; the proxy passes it on whole.
            List<String> unfinished = underGracefulStop.stream().filter(ends::containsKey)
                    .filter(tag -> !ends.get(tag).equals("whole") && !ends.get(tag).equals("cut by refusal"))
                    .sorted().map(tag -> tag + ": " + ends.get(tag)).toList();
            assertThat(unfinished).as(seed("requests under way at an endpoint's graceful stop, not answered whole"))
                    .isEmpty();
            assertThat(sequence.gracefulStops).as(seed("endpoints stopped gracefully")).isPositive();
            assertThat(sequence.killings).as(seed("endpoints killed")).isPositive();
            assertThat(sequence.drained).as(seed("a graceful stop with a download under way")).isNotNull();
            assertThat(ends.get(sequence.drained.call.tag()))
                    .as(seed("the download under way at a graceful stop (" + sequence.drained.call.tag() + ")"))
                    .isEqualTo("whole");

            arrivals.drain();
            assertThat(arrivals.unclaimed()).as(seed("requests a backend received that the model sent nowhere"))
                    .isEmpty();
            assertThat(arrivals.unexpected).as(seed("other requests the backends received")).isEmpty();
            assertThat(arrivals.repeatedUnexcused()).as(seed("requests the backends received twice")).isEmpty();
            assertThat(proxy.metrics().get("mtls.proxy.config.generation").gauge().value())
                    .as(seed("the generation gauge")).isEqualTo((double) served.size());
            // A generator that stopped producing an outcome would prove nothing about it.
            assertThat(outcomes).as(seed("outcomes " + outcomes)).containsKeys("200", "403", "404", "refused",
                    "closed by reload", "failed reload", "transfer 200", "tunnel opened", "tunnel kept across a reload",
                    "tunnel closed by reload", "tunnel closed by reload as it opens", "503", "health settled",
                    FAILOVER);
            assertThat(seen502()).as(seed("a 502 from stopped endpoints among " + outcomes.keySet())).isTrue();
            assertThat(sequence.invalid).as(seed("failed reloads")).isGreaterThanOrEqualTo(2);
            BufferLeaks.assertNoneReported(leaks, seed("buffer leaks"));
        } finally {
            for (Thread t : load) {
                t.interrupt();
            }
            for (int i = 1; i < endpoints.size(); i++) {
                endpoints.get(i).close();
            }
        }
    }

    /** Whether a request, a transfer or an upgrade has been answered 502 (every endpoint it may go to stopped). */
    private boolean seen502() {
        return outcomes.keySet().stream().anyMatch(o -> o.endsWith("502") || o.contains(" 502 "));
    }

    // ---- the generated sequence ------------------------------------------------------------------------------

    /** The foreground: reloads, each followed by a burst judged by the configuration it made serve. */
    private final class Sequence {
        private final RunningProxy proxy;
        private final ProxyConfig base;
        private final Random random;
        /** The health changes' own, so that they leave the rest of a seed's sequence as it was without them. */
        private final Random health;
        /** Endpoints stopped gracefully and endpoints killed, so far: every sequence has both. */
        private int gracefulStops;
        private int killings;
        /**
         * The download that kept an endpoint busy through its graceful stop ({@link #keepBusy}), once one has: every
         * sequence has one, and it must arrive whole.
         */
        private Transfer drained;
        /** The busy download's own draws, so that they leave the rest of a seed's sequence as it was without them. */
        private final Random draining;
        /** The stops and starts of endpoints' own, for the same reason. */
        private final Random liveness;
        /** A kept-alive connection per client. */
        private final Map<String, MtlsClient> open = new HashMap<>();
        private int routeNames = 100;
        private int requests;
        int invalid;
        private final Map<ReloadFailureReason, Integer> failedByReason = new HashMap<>();
        /** Open WebSocket tunnels, and upgrades whose 101 is still to come. */
        private final List<Tunnel> tunnels = new ArrayList<>();
        /** How many of {@link #crossings}' lines have been judged, and which endpoints may cross since then. */
        private int crossingsSeen;
        private Map<String, Set<Integer>> crossingsAllowed = Map.of();

        Sequence(RunningProxy proxy, ProxyConfig base, Random random) {
            this.proxy = proxy;
            this.base = base;
            this.random = random;
            this.health = new Random(SEED * 17 + 5);
            this.liveness = new Random(SEED * 13 + 7);
            this.draining = new Random(SEED * 19 + 3);
        }

        void run(int steps) throws Exception {
            burst("start");
            // From a step of the first part of the sequence on, each successful reload tries to stop an endpoint
            // gracefully with a download under way until one has: the remaining dozen steps leave room to retry.
            int drainFrom = 1 + draining.nextInt(Math.max(1, steps - 12));
            for (int step = 1; step <= steps; step++) {
                World now = served.get(serving);
                List<Transfer> transfers = startTransfers(now);
                // Towards the end, what the tunnels have not had yet is made to happen: one kept across a reload, one
                // closed by a reload, one closed by a reload as it opens.
                boolean tunnelsDue = steps - step < 10;
                boolean wantKept = tunnelsDue && !outcomes.containsKey("tunnel kept across a reload");
                boolean wantClosed = tunnelsDue && !outcomes.containsKey("tunnel closed by reload");
                boolean wantClosedAsOpens = tunnelsDue && !outcomes.containsKey("tunnel closed by reload as it opens");
                openTunnel(step, now, wantKept || wantClosed ? Boolean.FALSE : wantClosedAsOpens ? Boolean.TRUE : null);
                World next = now;
                for (int m = 1 + random.nextInt(2); m > 0; m--) {
                    next = mutate(next);
                }
                next = restoreOwnRoutes(next);
                // A tunnel's grant taken away: a pending one's most of the time, so that some close as they open.
                Tunnel pending = tunnels.stream().filter(Tunnel::pending).findAny().orElse(null);
                Tunnel opened = tunnels.stream().filter(t -> !t.pending()).findAny().orElse(null);
                if (wantKept && opened != null) {
                    next = keepingTunnels(now, next);
                } else if (wantClosed && opened != null) {
                    next = withoutTunnelGrant(next, opened.call().client());
                } else if (pending != null && (wantClosedAsOpens || random.nextInt(3) != 0)) {
                    next = withoutTunnelGrant(next, pending.call().client());
                } else if (!tunnels.isEmpty() && random.nextInt(3) == 0) {
                    next = withoutTunnelGrant(next, RoutingScenarios.pick(random, tunnels).call().client());
                } else if (random.nextInt(tunnels.isEmpty() ? 2 : 3) == 0) {
                    next = regrantTunnels(next);
                }
                // One in five fails, and at least two of every sequence.
                if (random.nextInt(5) == 0 || steps - step < 2 - invalid) {
                    failingReload(step, now, next);
                } else {
                    next = changeHealth(next, steps - step < 3 && !outcomes.containsKey("503"));
                    int left = steps - step;
                    keepConnectionsOfTheRefused(step, now, next);
                    boolean unreachable = left >= 3 && left < 6 && !seen502();
                    boolean failover = left >= 6 && left < 9 && !outcomes.containsKey(FAILOVER);
                    // A pending upgrade whose grant this reload takes away must meet the reload, not a stopped
                    // endpoint: its endpoint stays up this step (else "closed by reload as it opens" goes missing).
                    Set<Integer> keepUp = endpointsOfPendingTunnelsRefusedBy(next);
                    if (wantKept) {
                        tunnels.stream().filter(t -> !t.pending()).forEach(t -> keepUp.add(t.endpoint()));
                    }
                    Busy busy = drained == null && step >= drainFrom && !unreachable && !failover
                            ? keepBusy(now, next, keepUp) : null;
                    if (busy != null) {
                        transfers.add(busy.download());
                    }
                    if (busy != null && busy.endpoint() >= 0) {
                        reload(step, now, withStopped(next, busy.endpoint()), Set.of(busy.endpoint()), true);
                        gracefulStops++;
                        // Stopped at once on finding it busy; a download over by then (a very slow machine) has not
                        // proved anything, and a later step tries again.
                        drained = underGracefulStop.contains(busy.download().call.tag()) ? busy.download() : null;
                    } else {
                        World changed = changeLiveness(next, unreachable, failover,
                                left < 12 && killings == 0 && !unreachable && !failover, keepUp);
                        reload(step, now, changed, howTheyStop(next, changed, left < 12), false);
                    }
                }
                reviewTunnels(step, now, served.get(serving));
                burst("step " + step);
                for (Transfer t : transfers) {
                    judgeTransfer(step, t);
                }
            }
            for (Tunnel t : tunnels) {
                t.client().close();
            }
            tunnels.clear();
        }

        /**
         * The last reload, fixed: the third backend is in no backend any more and the second is checked no more,
         * so only the first may still get health checks.
         */
        void last() throws Exception {
            World now = served.get(serving);
            Map<String, Pool> backends = new LinkedHashMap<>();
            backends.put("alpha", new Pool(List.of(0), CHECKS.get(0)));
            backends.put("beta", new Pool(List.of(1), null));
            Map<String, String> backendOf = new HashMap<>();
            now.routes().forEach(r -> backendOf.put(r.name(), random.nextBoolean() ? "alpha" : "beta"));
            // Every endpoint up again, so that the counting of checks below sees the checks' own doing.
            reload(0, now, new World(now.routes(), backendOf, backends, now.partnersTrusted(), now.denyListed(),
                    now.failing(), Set.of()), Set.of(), false);
            burst("the last step");

            noOtherCrossings(0);
            // A check scheduled before the reload may still be on its way; after that, nothing.
            await().pollDelay(Duration.ofMillis(500)).atMost(Duration.ofSeconds(5)).until(() -> true);
            arrivals.drain();
            int[] before = arrivals.probes.clone();
            await().pollDelay(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(5)).until(() -> true);
            arrivals.drain();
            int[] after = arrivals.probes.clone();
            assertThat(after[0]).as("the checked backend is still checked (so the counting works)")
                    .isGreaterThan(before[0]);
            assertThat(after[1] - before[1]).as(seed("health checks of a backend whose check was removed"))
                    .isZero();
            assertThat(after[2] - before[2]).as(seed("health checks of an endpoint no backend has any more"))
                    .isZero();
        }

        /**
         * Half the time, an endpoint's {@code /health} starts or stops failing, at most two at once: a failing one
         * recovers, or the last one in rotation of a backend checked there fails (so that backends with none left
         * answer 503 now and then), or any one changes. Near the end of a sequence that has not had its 503 yet, a
         * backend is made to have none: checked at {@code /health}, on two endpoints at most, both failing.
         */
        private World changeHealth(World w, boolean forced) {
            if (forced) {
                String name = RoutingScenarios.pick(health, List.copyOf(new TreeSet<>(w.backendOf().values())));
                List<Integer> some = w.backends().get(name).endpoints();
                some = some.size() > 2 ? some.subList(0, 2) : some;
                Map<String, Pool> backends = new LinkedHashMap<>(w.backends());
                backends.put(name, new Pool(some, CHECKS.get(health.nextBoolean() ? 0 : 2)));
                return new World(w.routes(), w.backendOf(), backends, w.partnersTrusted(), w.denyListed(),
                        Set.copyOf(some), w.down());
            }
            if (health.nextBoolean()) {
                return w;
            }
            Set<Integer> failing = new TreeSet<>(w.failing());
            List<Integer> last = new ArrayList<>();
            w.backends().forEach((name, pool) -> {
                List<Integer> in = w.inRotation(name);
                if (pool.check() != null && pool.check().path().equals("/health") && in.size() == 1) {
                    last.add(in.get(0));
                }
            });
            int choice = health.nextInt(3);
            if (choice == 0 && !failing.isEmpty()) {
                failing.remove(RoutingScenarios.pick(health, List.copyOf(failing)));
            } else {
                int i = choice == 1 && !last.isEmpty() ? RoutingScenarios.pick(health, last)
                        : health.nextInt(endpoints.size());
                if (!failing.remove(i) && failing.size() < 2) {
                    failing.add(i);
                }
            }
            return w.withFailing(failing);
        }

        /**
         * Two times in five, an endpoint stops (at most two at once) or one stopped starts again, on the same port.
         * Towards the end of a sequence that has not had them yet, a backend is made to have one endpoint of two
         * stopped, the other up ({@code failover}), or every endpoint in rotation stopped ({@code unreachable}):
         * without a check, so that the stopped ones stay in rotation. With {@code anotherStop}, one more endpoint stops
         * if none does (starting one of two down). None of {@code keepUp} stops.
         */
        private World changeLiveness(World w, boolean unreachable, boolean failover, boolean anotherStop,
                Set<Integer> keepUp) {
            List<Integer> free = new ArrayList<>();
            for (int i = 0; i < endpoints.size(); i++) {
                if (!keepUp.contains(i)) {
                    free.add(i);
                }
            }
            World changed;
            if ((unreachable || failover) && !free.isEmpty()) {
                String name = RoutingScenarios.pick(liveness, List.copyOf(new TreeSet<>(w.backendOf().values())));
                List<Integer> some = new ArrayList<>(someOf(liveness, free, unreachable ? 2 : 1));
                if (failover) {
                    List<Integer> others = new ArrayList<>(List.of(0, 1, 2));
                    others.removeAll(some);
                    some.add(RoutingScenarios.pick(liveness, others)); // the one left up may be any
                }
                Map<String, Pool> backends = new LinkedHashMap<>(w.backends());
                backends.put(name, new Pool(List.copyOf(some), null));
                changed = new World(w.routes(), w.backendOf(), backends, w.partnersTrusted(), w.denyListed(),
                        w.failing(), Set.copyOf(unreachable ? some : some.subList(0, 1)));
            } else if (liveness.nextInt(5) >= 2) {
                changed = w;
            } else {
                Set<Integer> down = new TreeSet<>(w.down());
                if (!down.isEmpty() && (down.size() == 2 || liveness.nextBoolean())) {
                    down.remove(RoutingScenarios.pick(liveness, List.copyOf(down)));
                } else {
                    int i = liveness.nextInt(endpoints.size());
                    if (!keepUp.contains(i)) {
                        down.add(i);
                    }
                }
                changed = w.withDown(down);
            }
            if (!anotherStop || changed.down().stream().anyMatch(i -> !w.down().contains(i))) {
                return changed;
            }
            List<Integer> up = new ArrayList<>(free);
            up.removeAll(changed.down());
            up.removeAll(w.down());
            return up.isEmpty() ? changed : withStopped(changed, RoutingScenarios.pick(liveness, up));
        }

        /** {@code w} with endpoint {@code i} stopped too; one of two stopped already starts again. */
        private World withStopped(World w, int i) {
            Set<Integer> down = new TreeSet<>(w.down());
            if (down.size() >= 2) {
                down.remove(RoutingScenarios.pick(liveness, List.copyOf(down)));
            }
            down.add(i);
            return w.withDown(down);
        }

        /**
         * Of the endpoints {@code next} stops, those that stop gracefully (the others are killed): half of them, and
         * towards the end ({@code due}) of a sequence that has had no killing yet, the first one is killed.
         */
        private Set<Integer> howTheyStop(World now, World next, boolean due) {
            Set<Integer> graceful = new TreeSet<>();
            for (int i : next.down()) {
                if (now.down().contains(i)) {
                    continue;
                }
                if (!(due && killings == 0) && liveness.nextBoolean()) {
                    graceful.add(i);
                    gracefulStops++;
                } else {
                    killings++;
                }
            }
            return Set.copyOf(graceful);
        }

        /**
         * Every sequence has a reload close an open connection whose certificate it refuses. Whether a client has a
         * kept-alive connection then is the luck of its last answers (a 502 or a 400 closes it), and stopped
         * endpoints change those: until a reload has closed one, each client {@code next} refuses that has none gets
         * one first, with a request judged as the bursts' are.
         */
        private void keepConnectionsOfTheRefused(int step, World now, World next) throws Exception {
            if (outcomes.containsKey("closed by reload")) {
                return;
            }
            for (Workload w : clients()) {
                if (next.refuses(w) && !now.refuses(w) && !open.containsKey(w.name())) {
                    Call call = new Call("f" + requests++, w, null, "GET", "/", "kept-alive.example.test");
                    String problem = send(call, null, now.expect(call), true);
                    if (problem != null) {
                        failures.add("== step " + step + ", " + call.tag() + " from " + w.name() + " on a new "
                                + "connection: " + problem + "\n  configuration:\n" + now.describe().indent(4));
                    }
                }
            }
        }

        /** The endpoints of the upgrades still waiting for their 101 that {@code next} no longer allows. */
        private Set<Integer> endpointsOfPendingTunnelsRefusedBy(World next) {
            Set<Integer> theirs = new TreeSet<>();
            for (Tunnel t : tunnels) {
                Expected expected = next.expect(t.call());
                if (t.pending() && (expected == null || expected.verdict().status() != 200)) {
                    theirs.add(t.endpoint());
                }
            }
            return theirs;
        }

        /**
         * A reload, with the endpoints' health as {@code next} has it: changed just before the reload (so that the old
         * checks may be counting it as the reload hands their verdicts over) or just after it. Where the README leaves
         * a verdict open for a while, the health change is a window in which the background accepts either verdict;
         * the foreground waits out the README's bound and then the gauge, and judges strictly from there. Of the
         * endpoints {@code next} stops, those in {@code graceful} stop gracefully, the others are killed; before the
         * reload when {@code atOnce} (an endpoint serving a download that must still be under way), else before it,
         * while it is built or after it, as the sequence draws.
         */
        private void reload(int step, World now, World next, Set<Integer> graceful, boolean atOnce) throws Exception {
            int index = served.size();
            Map<String, Set<Integer>> unsureNow = unsureBefore(now, next);
            Map<String, Set<Integer>> unsureNext = unsureAfter(now, next);
            Set<Integer> stopping = new TreeSet<>(now.down());
            stopping.addAll(next.down());
            stopping.removeIf(i -> now.down().contains(i) && next.down().contains(i));
            boolean window = !unsureNow.isEmpty() || !unsureNext.isEmpty() || !stopping.isEmpty();
            noOtherCrossings(step);
            crossingsAllowed = new TreeMap<>(unsureNow);
            unsureNext.forEach((b, unsure) -> crossingsAllowed.computeIfAbsent(b, x -> new TreeSet<>()).addAll(unsure));
            if (window) {
                Set<Integer> killed = new TreeSet<>(next.down());
                killed.removeAll(now.down());
                killed.removeAll(graceful);
                windows.add(new Window(Map.of(index - 1, unsureNow, index, unsureNext), Set.copyOf(stopping),
                        Set.copyOf(killed), graceful));
                healthEpoch.incrementAndGet();
            }
            boolean healthFirst = health.nextBoolean();
            if (healthFirst) {
                applyHealth(next.failing());
            }
            // Endpoints stop or start before the reload, while it is built and hands the checks over, or after it.
            int when = stopping.isEmpty() ? -1 : atOnce ? 0 : liveness.nextInt(3);
            if (when == 0) {
                applyLiveness(next.down(), graceful);
            }
            Thread during = when == 1 ? new Thread(() -> applyLiveness(next.down(), graceful),
                    "stop-start-endpoints") : null;
            served.add(next);
            attempting = index;
            if (during != null) {
                during.start();
            }
            long generation = proxy.reload(c -> config(next, base));
            serving = index;
            if (during != null) {
                during.join();
            }
            if (!healthFirst) {
                applyHealth(next.failing());
            }
            if (when == 2) {
                applyLiveness(next.down(), graceful);
            }
            long changed = System.nanoTime();
            if (window) {
                settle(step, next, unsureNext, stopping.stream().anyMatch(i -> !next.down().contains(i)), changed);
                healthEpoch.incrementAndGet();
            }
            // Sure or settled: each backend has exactly the model's endpoints in rotation.
            for (String backend : next.backends().keySet()) {
                String problem = gaugeProblem(backend, next);
                if (problem != null) {
                    failures.add("step " + step + ": backend " + backend + problem + (window
                            ? " after its health settled" : " right after the reload") + "\n" + next.describe());
                }
            }
            assertThat(generation).as(seed("step " + step + ": the generation after a reload")).isEqualTo(index + 1);
            assertThat(proxy.server().generation()).isEqualTo(index + 1);
            assertThat(proxy.metrics().get("mtls.proxy.config.generation").gauge().value()).isEqualTo(index + 1.0);
            assertThat(proxy.count("mtls.proxy.config.reloads", "result", "success")).isEqualTo((double) index);
            // The README: open connections whose certificate the new configuration refuses are closed at once.
            for (Workload w : clients()) {
                MtlsClient c = open.get(w.name());
                if (c != null && next.refuses(w) && !now.refuses(w)) {
                    if (c.closedWithin(2_000)) {
                        outcomes.merge("closed by reload", 1, Integer::sum);
                    } else {
                        failures.add("step " + step + ": " + w.name() + "'s open connection was not closed by the"
                                + " reload that refuses its certificate\n" + next.describe());
                    }
                    open.remove(w.name()).close();
                }
            }
        }

        /**
         * The endpoints of {@code next}'s backends whose verdict the README leaves open for a while after the
         * reload. It is sure where the verdict the endpoint starts with (the old one, for an endpoint the backend had
         * under a check; in rotation, for one new to it or to checks) is the one the new check settles on, and no
         * check, old or new, answers differently now than before: the old verdict carries over (same question), or
         * holds until the first result of another question, which then agrees; a new endpoint's first check confirms
         * it. Anything else is settled by the thresholds or by a first result, at a time the test does not know.
         */
        private static Map<String, Set<Integer>> unsureAfter(World now, World next) {
            Map<String, Set<Integer>> unsure = new TreeMap<>();
            next.backends().forEach((name, pool) -> {
                if (pool.check() == null) {
                    return; // no check: all in rotation, at once
                }
                Pool before = now.backends().get(name);
                for (int i : pool.endpoints()) {
                    boolean carried = before != null && before.check() != null && before.endpoints().contains(i);
                    boolean start = !carried || World.passes(i, before.check(), now);
                    boolean end = World.passes(i, pool.check(), next);
                    boolean changed = carried && wavers(i, before.check(), now, next)
                            || wavers(i, pool.check(), now, next);
                    if (start != end || changed) {
                        unsure.computeIfAbsent(name, n -> new TreeSet<>()).add(i);
                    }
                }
            });
            return unsure;
        }

        /**
         * The README: {@code event=backend_health} is logged only when an endpoint crosses a threshold. Since the last
         * reload, only endpoints whose verdict it left open may have: one the model is sure of that left rotation and
         * came back (at a reload that handed it over wrongly, say) would show here even where no request saw it.
         */
        void noOtherCrossings(int step) {
            List<String> lines = crossings.lines();
            for (String line : lines.subList(crossingsSeen, lines.size())) {
                java.util.regex.Matcher m = CROSSING.matcher(line);
                if (!m.find()) {
                    continue;
                }
                int port = Integer.parseInt(m.group(2));
                int endpoint = -1;
                for (int i = 0; i < endpoints.size(); i++) {
                    endpoint = endpoints.get(i).port() == port ? i : endpoint;
                }
                if (!crossingsAllowed.getOrDefault(m.group(1), Set.of()).contains(endpoint)) {
                    failures.add("before step " + step + ": " + line.strip() + ", though the README left no verdict of"
                            + " backend " + m.group(1) + " open but " + crossingsAllowed);
                }
            }
            crossingsSeen = lines.size();
        }

        /**
         * Whether endpoint {@code i}'s check answers otherwise at any moment of the change from {@code now}'s health
         * to {@code next}'s: {@code /health} and liveness change one after the other, in either order, so a check
         * may pass for a moment between two states that both fail it (a {@code /health} mended, then the endpoint
         * stopped), and a threshold of one makes that moment a crossing.
         */
        private static boolean wavers(int i, HealthCheckConfig check, World now, World next) {
            boolean before = World.passes(i, check, now);
            return World.passes(i, check, next) != before
                    || World.passes(i, check, next.withDown(now.down())) != before
                    || World.passes(i, check, next.withFailing(now.failing())) != before;
        }

        /** The endpoints of {@code now}'s backends whose check answers otherwise as it changes to {@code next}'s. */
        private static Map<String, Set<Integer>> unsureBefore(World now, World next) {
            Map<String, Set<Integer>> unsure = new TreeMap<>();
            now.backends().forEach((name, pool) -> {
                for (int i : pool.endpoints()) {
                    if (pool.check() != null && wavers(i, pool.check(), now, next)) {
                        unsure.computeIfAbsent(name, n -> new TreeSet<>()).add(i);
                    }
                }
            });
            return unsure;
        }

        /**
         * Stops the endpoints in {@code down} that are up, gracefully those in {@code graceful}, and starts those that
         * are not and are down.
         */
        private void applyLiveness(Set<Integer> down, Set<Integer> graceful) {
            for (int i = 0; i < endpoints.size(); i++) {
                if (down.contains(i) && !stopped.contains(i) && graceful.contains(i)) {
                    for (TestBackend.InFlight f : endpoints.get(i).stopGracefully()) {
                        String tag = f.headers().get("X-Case");
                        if (tag != null && !f.tunnel()) {
                            underGracefulStop.add(tag);
                        }
                    }
                    stopped.add(i);
                } else if (down.contains(i) && !stopped.contains(i)) {
                    endpoints.get(i).stopWithConnections();
                    stopped.add(i);
                    kills.incrementAndGet(i);
                } else if (!down.contains(i) && stopped.contains(i)) {
                    try {
                        endpoints.get(i).listenAgain();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new IllegalStateException("interrupted while starting endpoint " + i, e);
                    }
                    stopped.remove(i);
                }
            }
        }

        private void applyHealth(Set<Integer> failing) {
            for (int i = 0; i < endpoints.size(); i++) {
                endpoints.get(i).healthy(!failing.contains(i));
            }
        }

        /**
         * Waits as long as the README says a verdict may take, {@code healthyThreshold} or {@code unhealthyThreshold}
         * checks (whichever is more) an {@code interval} apart from the change, and an endpoint started again its
         * {@code coolDown}, then for the gauge to show the model's endpoints in rotation: a machine busy with the
         * traffic may be late, but never by seconds.
         */
        private void settle(int step, World next, Map<String, Set<Integer>> unsure, boolean started, long changed) {
            long bound = started ? COOL_DOWN.toNanos() : 0;
            for (String backend : unsure.keySet()) {
                HealthCheckConfig check = next.backends().get(backend).check();
                bound = Math.max(bound, Math.max(check.healthyThreshold(), check.unhealthyThreshold())
                        * check.interval().toNanos());
            }
            long left = changed + bound + SETTLE_SLACK.toNanos() - System.nanoTime();
            if (left > 0) {
                await().pollDelay(Duration.ofNanos(left)).atMost(Duration.ofNanos(left).plusSeconds(1))
                        .until(() -> true);
            }
            for (String backend : next.backends().keySet()) {
                try {
                    await().atMost(LATE).pollInterval(Duration.ofMillis(10))
                            .until(() -> gaugeProblem(backend, next) == null);
                } catch (org.awaitility.core.ConditionTimeoutException e) {
                    failures.add("step " + step + ": backend " + backend + gaugeProblem(backend, next) + ", "
                            + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - changed) + "ms after its endpoints "
                            + unsure.getOrDefault(backend, Set.of()) + " changed health, within "
                            + TimeUnit.NANOSECONDS.toMillis(bound) + "ms\n" + next.describe());
                }
            }
            outcomes.merge("health settled", 1, Integer::sum);
        }

        /**
         * Null when {@code backend_healthy_endpoints} counts the endpoints the model has in rotation: each passing its
         * check, if any, and not cooling down. Passive health counts there too: an endpoint that is stopped but still
         * in rotation (no check, or one yet to notice) cools down once a request tried it, which the model cannot
         * know, so it may or may not be counted; every other one must be.
         */
        private String gaugeProblem(String backend, World next) {
            List<Integer> in = next.inRotation(backend);
            long up = in.stream().filter(i -> !next.down().contains(i)).count();
            double healthy = healthyEndpoints(backend);
            return healthy >= up && healthy <= in.size() ? null : " has " + healthy + " healthy endpoints, the README"
                    + " says " + in + (up < in.size() ? " less those of them stopped and cooling down" : "");
        }

        private double healthyEndpoints(String backend) {
            return proxy.metrics().get("mtls.proxy.backend.healthy.endpoints").tag("backend", backend).gauge()
                    .value();
        }

        /** A reload whose mutations must change nothing: something in it cannot be built. */
        private void failingReload(int step, World now, World next) throws Exception {
            int kind = random.nextInt(3);
            ReloadFailureReason reason = kind == 2 ? ReloadFailureReason.RESTART_REQUIRED
                    : ReloadFailureReason.TLS_MATERIAL;
            Path serverPem = fixture.pki().serverCertificatePem();
            String pem = Files.readString(serverPem);
            ProxyConfig broken = config(next, base);
            if (kind == 0) {
                fixture.pki().write(serverPem.getFileName().toString(), pem.substring(0, pem.length() / 2));
            } else if (kind == 1) {
                Map<String, TrustAnchorConfig> anchors = new LinkedHashMap<>(broken.trustAnchors());
                anchors.put(PARTNERS, new TrustAnchorConfig(fixture.pki().dir().resolve("no-such-ca.pem")));
                broken = broken.withTrustAnchors(anchors);
            } else {
                ListenerConfig l = broken.listeners().get(0);
                broken = broken.withListeners(List.of(new ListenerConfig(l.name(), new HostPort("127.0.0.1", 1),
                        l.tls(), l.limits(), l.idleTimeout(), l.handshakeTimeout())));
            }
            ProxyConfig attempt = broken;
            try {
                proxy.reload(c -> attempt);
                failures.add("step " + step + ": a reload that cannot be built (" + reason + ") succeeded");
                return;
            } catch (ReloadException e) {
                if (e.reason() != reason) {
                    failures.add("step " + step + ": failed reload's reason " + e.reason() + ", expected " + reason
                            + ": " + e.getMessage());
                }
            } finally {
                if (kind == 0) {
                    fixture.pki().write(serverPem.getFileName().toString(), pem);
                }
            }
            invalid++;
            outcomes.merge("failed reload", 1, Integer::sum);
            failedByReason.merge(reason, 1, Integer::sum);
            assertThat(proxy.server().generation()).as(seed("step " + step + ": generation after a failed reload"))
                    .isEqualTo(serving + 1);
            assertThat(proxy.metrics().get("mtls.proxy.config.generation").gauge().value()).isEqualTo(serving + 1.0);
            assertThat(proxy.count("mtls.proxy.config.reloads", "result", "failure", "reason", reason.label()))
                    .isEqualTo((double) failedByReason.get(reason));
            assertThat(proxy.count("mtls.proxy.config.reloads", "result", "success")).isEqualTo((double) serving);
        }

        /** Requests judged by the configuration serving now: kept-alive and new connections, some with bodies. */
        private void burst(String when) throws Exception {
            World world = served.get(serving);
            for (int n = 6 + random.nextInt(7); n > 0; n--) {
                Call call = call(random, "f" + requests++, world);
                byte[] body = body(random, call);
                Expected expected = world.expect(call);
                boolean fresh = random.nextInt(4) == 0 || !open.containsKey(call.client().name());
                String problem = send(call, body, expected, fresh);
                if (problem != null) {
                    failures.add("== " + when + ", " + call.tag() + " from " + call.client().name()
                            + (fresh ? " on a new connection" : " on a kept-alive one") + ": " + problem
                            + "\n  sent: " + head(call, body).replace("\r\n", "\\r\\n")
                            + "\n  README: " + (expected == null ? "certificate refused"
                                    : String.join("; ", ReadmePolicyModel.describe(expected.verdict()))
                                    + (expected.endpoints().isEmpty() ? "" : " at one of " + expected.endpoints()))
                            + "\n  configuration:\n" + world.describe().indent(4));
                }
            }
        }

        /** Null when the proxy answered as expected, else what differs. */
        private String send(Call call, byte[] body, Expected expected, boolean fresh) throws Exception {
            String client = call.client().name();
            MtlsClient c = null;
            try {
                if (fresh) {
                    c = MtlsClient.connect(proxy.address(), contexts.get(client), null, null);
                } else {
                    c = open.remove(client);
                }
                MtlsClient.Response response = exchange(c, call, body);
                if (expected != null && !"close".equalsIgnoreCase(response.header("connection"))) {
                    MtlsClient replaced = open.put(client, c);
                    if (replaced != null) {
                        replaced.close();
                    }
                    c = null;
                }
                return judge(call, body, expected, response.status());
            } catch (IOException e) {
                if (expected == null) {
                    outcomes.merge("refused", 1, Integer::sum);
                    arrivals.claim(call.tag());
                    return null;
                }
                return "no answer: " + e;
            } finally {
                if (c != null) {
                    c.close();
                }
            }
        }

        void closeConnections() throws IOException {
            for (MtlsClient c : open.values()) {
                c.close();
            }
            for (Tunnel t : tunnels) {
                t.client().close();
            }
        }

        // ---- large and chunked bodies across a reload ----

        /**
         * Up to two requests of the stream route whose bodies are on their way while the reload comes, each on a
         * thread of its own; returns once each has had its head read by the proxy as far as the client can tell:
         * a 100 Continue or the first bytes of the answer came back (then only {@code now} may have judged it), or
         * a body without {@code Expect} is under way (then the reload may have come first).
         */
        private List<Transfer> startTransfers(World now) throws InterruptedException {
            List<Transfer> started = new ArrayList<>();
            for (int n = random.nextInt(3); n > 0; n--) {
                int kind = random.nextInt(3); // 0 upload, 1 download, 2 both
                long upload = kind == 1 ? -1 : size();
                long download = kind == 0 ? random.nextInt(4096) : size();
                String tag = "t" + requests++;
                String target = "/integrity/" + tag + "?bytes=" + download + "&pattern=" + random.nextInt(256)
                        + (kind != 0 ? "&trickle=1" : "") + (random.nextBoolean() ? "&chunked=1" : "");
                String method = kind == 0 ? "POST" : kind == 1 ? "GET" : "PUT";
                Call call = new Call(tag, client(now, STREAM_HOST, method, target), null, method, target, STREAM_HOST);
                Transfer t = new Transfer(call, healthEpoch.get(), serving, upload, upload >= 0 && random.nextBoolean(),
                        upload >= 0 && random.nextInt(3) != 0, download, random.nextLong());
                t.thread.start();
                started.add(t);
            }
            for (Transfer t : started) {
                awaitHeadRead(t);
            }
            return started;
        }

        private void awaitHeadRead(Transfer t) throws InterruptedException {
            if (!t.headRead.await(10, TimeUnit.SECONDS)) {
                failures.add("transfer " + t.call.tag() + ": no sign of its head being read within 10s");
            }
        }

        /**
         * A download made to keep an endpoint busy through its graceful stop: the largest, trickled (a second or more
         * of the backend's time), by the first client that {@code now} surely forwards there and {@code next} does not
         * refuse (a refused certificate would cut it). Returns once its first bytes came back and an endpoint is
         * serving it; null when no client qualifies. Its {@code endpoint} is -1 when no endpoint that may stop is
         * serving it: one of {@code keepUp}, one stopped already, or none (it is over).
         */
        private Busy keepBusy(World now, World next, Set<Integer> keepUp) throws InterruptedException {
            String tag = "t" + requests;
            String target = "/integrity/" + tag + "?bytes=" + LARGEST_TRANSFER + "&pattern=" + draining.nextInt(256)
                    + "&trickle=1" + (draining.nextBoolean() ? "&chunked=1" : "");
            Workload client = clients().stream().filter(w -> !next.refuses(w)).filter(w -> {
                Expected e = now.expect(new Call(tag, w, null, "GET", target, STREAM_HOST));
                return e != null && e.forwarded();
            }).findFirst().orElse(null);
            if (client == null) {
                return null;
            }
            requests++;
            Transfer download = new Transfer(new Call(tag, client, null, "GET", target, STREAM_HOST),
                    healthEpoch.get(), serving, -1, false, false, LARGEST_TRANSFER, draining.nextLong());
            download.thread.start();
            awaitHeadRead(download);
            int[] at = {-1};
            try {
                await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(2)).until(() -> {
                    for (int i = 0; i < endpoints.size(); i++) {
                        if (endpoints.get(i).exchangesUnderWay().stream()
                                .anyMatch(f -> tag.equals(f.headers().get("X-Case")))) {
                            at[0] = i;
                        }
                    }
                    return at[0] >= 0 || !download.thread.isAlive();
                });
            } catch (org.awaitility.core.ConditionTimeoutException e) {
                failures.add("download " + tag + ": its first bytes came back, yet no endpoint is serving it");
            }
            boolean mayStop = at[0] >= 0 && !keepUp.contains(at[0]) && !now.down().contains(at[0]);
            return new Busy(download, mayStop ? at[0] : -1);
        }

        /** Hundreds of KiB to a few MiB. */
        private long size() {
            return 256 * 1024 + random.nextInt(LARGEST_TRANSFER - 256 * 1024);
        }

        /** Mostly a client the world lets make this request, so that most get through; now and then anyone. */
        private Workload client(World world, String host, String method, String target) {
            List<Workload> allowed = new ArrayList<>();
            for (Workload w : clients()) {
                Expected e = world.expect(new Call("probe", w, null, method, target, host));
                if (e != null && e.verdict().status() == 200) {
                    allowed.add(w);
                }
            }
            return RoutingScenarios.pick(random, allowed.isEmpty() || random.nextInt(5) == 0 ? clients() : allowed);
        }

        /**
         * A transfer is answered as the configuration that read its head says (only the one it was sent under when
         * its answer started before the reload), its bodies arriving whole and byte-exact at the backend and at
         * the client, on an endpoint of the backend that configuration named; or cut, when a configuration in
         * force meanwhile refuses its certificate.
         */
        private void judgeTransfer(int step, Transfer t) throws InterruptedException {
            t.thread.join(30_000);
            int to = serving;
            int answered = healthEpoch.get();
            List<String> why = new ArrayList<>();
            boolean matched = false;
            if (t.thread.isAlive()) {
                why.add("still running after 30s");
            } else if (t.status == -1) {
                boolean stoppedUnder = false;
                for (int i = t.from; i <= to && !matched; i++) {
                    matched = served.get(i).refuses(t.call.client());
                    Expected expected = served.get(i).expect(t.call, unsure(i, t.sent, answered));
                    stoppedUnder |= expected != null && expected.mayBeCut();
                }
                why.add(matched ? "cut, its certificate refused" : "cut (" + t.failure + ") with its certificate "
                        + "accepted by generations " + (t.from + 1) + ".." + (to + 1)
                        + " and no endpoint it may be on killed (one stopped gracefully finishes it)");
                arrivals.excuse(t.call.tag());
                outcomes.merge(matched ? "transfer cut by reload" : stoppedUnder ? "transfer cut by a stopped endpoint"
                        : "transfer cut", 1, Integer::sum);
                matched |= stoppedUnder;
            } else {
                for (int i = t.from; i <= (t.synced ? t.from : to) && !matched; i++) {
                    Expected expected = served.get(i).expect(t.call, unsure(i, t.sent, answered));
                    String problem = expected == null ? "certificate refused, yet answered"
                            : judgeTransfer(t, expected);
                    matched = problem == null;
                    why.add("generation " + (i + 1) + ": " + (matched ? "agrees" : problem));
                }
                if (matched) {
                    outcomes.merge("transfer " + t.status, 1, Integer::sum);
                }
            }
            ends.put(t.call.tag(), end(t.call.client(), t.status == 200 && matched, t.status, t.from, to,
                    t.failure));
            if (!matched) {
                failures.add("== step " + step + ", transfer " + t.call.tag() + " from " + t.call.client().name()
                        + ": " + t.call.method() + " " + t.call.target() + (t.upload < 0 ? ""
                        : " with " + t.upload + " body bytes" + (t.chunked ? " chunked" : "")
                        + (t.expectContinue ? " after 100-continue" : "")) + "\n  " + String.join("\n  ", why));
            }
        }

        private String judgeTransfer(Transfer t, Expected expected) throws InterruptedException {
            Verdict v = expected.verdict();
            String wrong = expected.statusProblem(t.status, sentAgain(t.call.method(), t.upload < 0));
            if (wrong != null) {
                return wrong;
            }
            if (expected.mayBeCut()) {
                arrivals.excuse(t.call.tag()); // a 502 from an endpoint stopped after it had the request
            }
            if (t.status != 200) {
                return null;
            }
            Arrival a = arrivals.await(t.call.tag());
            if (a == null) {
                return "a 200 without any backend receiving the request";
            }
            TestBackend.Recorded r = a.recorded();
            long sent = Math.max(t.upload, 0);
            if (!expected.endpoints().contains(a.endpoint())) {
                return "received by endpoint " + a.endpoint() + ", the route's backend has " + expected.endpoints();
            } else if (!r.uri().equals(v.target())) {
                return "the backend received " + r.uri() + ", the README says " + v.target();
            } else if (r.bodyBytes() != sent || !t.sentSha256.equals(r.bodySha256())) {
                return "the backend received " + r.bodyBytes() + " bytes with SHA-256 " + r.bodySha256()
                        + ", the client sent " + sent + " with " + t.sentSha256;
            } else if (t.chunked && !t.sentSha256.equals(r.trailers().get(TestBackend.IntegrityBody.SHA256_TRAILER))) {
                return "the backend received the trailers " + r.trailers();
            } else if (!t.sentSha256.equals(t.header("x-seen-sha256"))) {
                return "the answer says the backend saw SHA-256 " + t.header("x-seen-sha256");
            } else if (t.received != t.download || t.firstWrongByte >= 0) {
                return "the client received " + t.received + " of " + t.download + " bytes"
                        + (t.firstWrongByte >= 0 ? ", wrong from byte " + t.firstWrongByte : "");
            }
            return null;
        }

        // ---- WebSocket tunnels across a reload ----

        /**
         * Two steps in three, while fewer than four are open, a WebSocket upgrade at the tunnel route, mostly by a
         * client it lets in: answered as {@code now} says, and a tunnel that opens echoes. Half of them ask the
         * backend to answer after a second: it is left pending, its request at the backend, for the reload.
         */
        private void openTunnel(int step, World now, Boolean forceLate) throws Exception {
            if (tunnels.size() >= 4 || forceLate == null && random.nextInt(3) == 0) {
                return;
            }
            boolean late = forceLate == null ? random.nextBoolean() : forceLate;
            String target = "/ws" + (late ? "?ms=1000" : "");
            Workload who = client(now, WS_HOST, "GET", target);
            if (forceLate != null) {
                who = clients().stream().filter(w -> {
                    Expected e = now.expect(new Call("probe", w, null, "GET", target, WS_HOST));
                    return e != null && e.forwarded();
                }).findFirst().orElse(who);
            }
            Call call = new Call("w" + requests++, who, null, "GET", target, WS_HOST);
            Expected expected = now.expect(call);
            MtlsClient c = null;
            String problem = null;
            try {
                c = MtlsClient.connect(proxy.address(), contexts.get(call.client().name()), null, null);
                c.send(call.method() + " " + call.target() + " HTTP/1.1\r\nHost: " + call.host() + "\r\nX-Case: "
                        + call.tag() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                        + "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
                // Opened while every verdict is settled: the model is sure whether health lets it through.
                boolean forwarded = expected != null && expected.forwarded();
                int refusal = expected == null ? -1 : expected.unforwarded();
                if (forwarded && late) {
                    problem = arrivedAt(call, expected);
                    if (problem == null) {
                        tunnels.add(new Tunnel(call, c, serving, true, arrivals.endpointOf(call.tag())));
                        return;
                    }
                } else {
                    MtlsClient.Response r = c.readResponse();
                    if (expected == null) {
                        problem = "answered " + r.status() + " though its certificate is refused";
                    } else if (r.status() != (forwarded ? 101 : refusal)) {
                        problem = "got " + r.status() + ", the README says " + (forwarded ? "101 (forwarded)" : refusal);
                    } else if (forwarded) {
                        problem = arrivedAt(call, expected);
                        int endpoint = problem != null ? -1 : arrivals.endpointOf(call.tag());
                        problem = problem != null ? problem : taggedBy(r, endpoint);
                        problem = problem != null ? problem : echo(c);
                        if (problem == null) {
                            tunnels.add(new Tunnel(call, c, serving, false, endpoint));
                            outcomes.merge("tunnel opened", 1, Integer::sum);
                            return;
                        }
                    } else {
                        outcomes.merge("tunnel refused " + r.status(), 1, Integer::sum);
                    }
                }
            } catch (IOException e) {
                problem = expected == null ? null : "no answer: " + e;
                arrivals.claim(call.tag());
            }
            if (c != null) {
                c.close();
            }
            if (problem != null) {
                failures.add("== step " + step + ", upgrade " + call.tag() + " from " + call.client().name() + ": "
                        + problem + "\n  README: " + (expected == null ? "certificate refused"
                                : String.join("; ", ReadmePolicyModel.describe(expected.verdict())))
                        + "\n  configuration:\n" + now.describe().indent(4));
            }
        }

        /** Null when one of the route's backend's endpoints received the upgrade request as the README says. */
        private String arrivedAt(Call call, Expected expected) throws InterruptedException {
            Arrival a = arrivals.await(call.tag());
            if (a == null) {
                return "the backend never received the upgrade request";
            } else if (!expected.endpoints().contains(a.endpoint())) {
                return "received by endpoint " + a.endpoint() + ", the route's backend has " + expected.endpoints();
            } else if (!a.recorded().uri().equals(expected.verdict().target())) {
                return "the backend received " + a.recorded().uri();
            }
            return null;
        }

        /**
         * Every tunnel after a reload, as the README's "Reload and shutdown" says: one whose upgrade request the
         * configuration now serving still allows stays open and echoes byte-exact; one it no longer allows is
         * closed (logged {@code reason=tunnel_<decision> cause=reload}), or as it opens when its 101 comes after
         * the reload ({@code cause=upgrade}); one whose certificate it refuses is closed at once.
         */
        private void reviewTunnels(int step, World before, World after) throws Exception {
            for (java.util.Iterator<Tunnel> it = tunnels.iterator(); it.hasNext();) {
                Tunnel t = it.next();
                Expected expected = after.expect(t.call());
                boolean refused = after.refuses(t.call().client());
                boolean allowed = expected != null && expected.verdict().status() == 200;
                // The README: a tunnel lasts until either side closes; a killed endpoint closes its side, one
                // stopped gracefully serves it to its end, as nginx and Envoy do with an upgraded connection.
                boolean endpointStopped = kills.get(t.endpoint()) != t.killsAtOpen();
                String problem = null;
                String outcome;
                try {
                    if (t.pending()) {
                        MtlsClient.Response r = t.client().readResponse();
                        problem = r.status() == (endpointStopped ? 502 : 101) ? null : "the upgrade answered "
                                + r.status() + " after the reload" + (endpointStopped ? ", its endpoint stopped, the"
                                        + " README says 502" : "");
                        problem = problem != null || endpointStopped ? problem : taggedBy(r, t.endpoint());
                    }
                    if (problem != null) {
                        outcome = null;
                    } else if (endpointStopped) {
                        allowed = false;
                        boolean closed = t.pending() || t.client().closedWithin(3_000);
                        problem = closed ? null : "still open, though its endpoint " + t.endpoint() + " was stopped";
                        outcome = t.pending() ? "upgrade answered 502 by a stopped endpoint"
                                : "tunnel closed by a stopped endpoint";
                    } else if (allowed) {
                        problem = echo(t.client());
                        problem = problem != null ? problem : onEndpoint(t.client(), t.endpoint());
                        outcome = "tunnel kept across a reload";
                    } else if (!t.client().closedWithin(3_000)) {
                        problem = "still open, though the configuration now " + (refused ? "refuses its certificate"
                                : "answers its upgrade " + expected.verdict().status());
                        outcome = null;
                    } else if (refused) {
                        problem = closeLogged(t.client(), after.denyListed().contains(t.call().client().name())
                                ? "reason=revoked" : "event=connection_closed", "cause=reload");
                        outcome = "tunnel closed by reload: certificate";
                    } else {
                        String reason = "reason=tunnel_" + switch (expected.verdict().status()) {
                            case 403 -> "deny";
                            case 404 -> "no_route";
                            case 405 -> "method_not_allowed";
                            default -> "status_" + expected.verdict().status();
                        };
                        problem = closeLogged(t.client(), reason, t.pending() ? "cause=" : "cause=reload");
                        outcome = "tunnel closed by reload" + (t.pending() ? " as it opens" : "");
                    }
                } catch (IOException e) {
                    outcome = refused ? "tunnel closed by reload: certificate" : null;
                    problem = refused ? null : "cut: " + e;
                    allowed &= refused;
                }
                if (outcome != null) {
                    outcomes.merge(outcome, 1, Integer::sum);
                }
                if (problem != null) {
                    failures.add("== step " + step + ", tunnel " + t.call().tag() + " of " + t.call().client().name()
                            + " opened under generation " + (t.from() + 1) + (t.pending() ? ", its 101 pending" : "")
                            + ": " + problem + "\n  configuration before:\n" + before.describe().indent(4)
                            + "  configuration after:\n" + after.describe().indent(4));
                }
                t.pending = false;
                if (!allowed || problem != null || random.nextInt(3) == 0) {
                    t.client().close();
                    it.remove();
                }
            }
        }

        /** Null when the proxy logged closing this client's connection with all of the fragments. */
        private String closeLogged(MtlsClient c, String... fragments) {
            String remote = "remote=" + c.localAddress();
            try {
                await().atMost(Duration.ofSeconds(2)).until(() -> closes.lines().stream().anyMatch(line ->
                        line.contains("event=connection_closed") && line.contains(remote)
                                && java.util.Arrays.stream(fragments).allMatch(line::contains)));
                return null;
            } catch (org.awaitility.core.ConditionTimeoutException e) {
                return "closed, but no log line with " + remote + " " + List.of(fragments) + " among "
                        + closes.lines().stream().filter(l -> l.contains(remote)).toList();
            }
        }

        /** Null when the 101 names the endpoint the upgrade request arrived at. */
        private String taggedBy(MtlsClient.Response r, int endpoint) {
            String port = String.valueOf(endpoints.get(endpoint).port());
            return port.equals(r.header("x-endpoint")) ? null : "the 101 came from the endpoint on port "
                    + r.header("x-endpoint") + ", the upgrade request arrived at endpoint " + endpoint + " (" + port + ")";
        }

        /** Null when the tunnel still leads to {@code endpoint}: its echo tells which one it is (TestBackend). */
        private String onEndpoint(MtlsClient c, int endpoint) throws IOException {
            c.output().write(maskedFrame(0x81, "endpoint?".getBytes(StandardCharsets.US_ASCII), 0x5a5a5a5a));
            c.output().flush();
            String answer = new String(readFrame(c.input(), 0x81), StandardCharsets.US_ASCII);
            String expected = "endpoint=" + endpoints.get(endpoint).port();
            return answer.equals(expected) ? null : "the tunnel opened on endpoint " + endpoint + " (" + expected
                    + ") now leads to " + answer;
        }

        /** Null when a binary message of random bytes comes back byte-exact. */
        private String echo(MtlsClient c) throws IOException {
            byte[] payload = new byte[1 + random.nextInt(3000)];
            random.nextBytes(payload);
            c.output().write(maskedBinaryFrame(payload, random.nextInt()));
            c.output().flush();
            byte[] back = readBinaryFrame(c.input());
            return java.util.Arrays.equals(payload, back) ? null
                    : "sent " + payload.length + " bytes, the echo was " + back.length + " different ones";
        }

        // ---- mutations: each returns a valid configuration ----

        private World mutate(World w) {
            List<GenRoute> routes = new ArrayList<>(w.routes());
            Map<String, String> backendOf = new HashMap<>(w.backendOf());
            Map<String, Pool> backends = new LinkedHashMap<>(w.backends());
            boolean partners = w.partnersTrusted();
            Set<String> denied = new HashSet<>(w.denyListed());
            switch (random.nextInt(12)) {
                case 0 -> {
                    GenRoute r = RoutingScenarios.pick(random, RoutingScenarios.routes(random));
                    GenRoute added = new GenRoute("r" + routeNames++, r.host(), r.prefix(), r.methods(), r.rules(),
                            r.dryRun(), r.shorthand());
                    if (routes.stream().noneMatch(o -> key(o).equals(key(added)))) {
                        routes.add(random.nextInt(routes.size() + 1), added);
                        backendOf.put(added.name(), RoutingScenarios.pick(random, List.copyOf(backends.keySet())));
                    }
                }
                case 1 -> {
                    List<Integer> generated = new ArrayList<>();
                    for (int i = 0; i < routes.size(); i++) {
                        if (!own(routes.get(i))) {
                            generated.add(i);
                        }
                    }
                    if (generated.size() > 1) {
                        int i = RoutingScenarios.pick(random, generated);
                        backendOf.remove(routes.remove(i).name());
                    }
                }
                case 2 -> changeRoute(routes, this::grant);
                case 3 -> changeRoute(routes, this::revoke);
                case 4 -> changeRoute(routes, this::reshape);
                case 5 -> {
                    String name = RoutingScenarios.pick(random, List.copyOf(backends.keySet()));
                    backends.put(name, new Pool(someEndpoints(), backends.get(name).check()));
                }
                case 6 -> {
                    String name = RoutingScenarios.pick(random, List.copyOf(backends.keySet()));
                    backends.put(name, new Pool(backends.get(name).endpoints(), random.nextInt(4) == 0 ? null
                            : RoutingScenarios.pick(random, CHECKS)));
                }
                case 7 -> {
                    // A third backend comes and goes; its routes go back to alpha when it goes.
                    if (backends.remove("gamma") != null) {
                        backendOf.replaceAll((route, b) -> b.equals("gamma") ? "alpha" : b);
                    } else {
                        backends.put("gamma", new Pool(someEndpoints(), random.nextBoolean() ? null
                                : RoutingScenarios.pick(random, CHECKS)));
                        backendOf.replaceAll((route, b) -> random.nextInt(3) == 0 ? "gamma" : b);
                    }
                }
                case 8, 11 -> {
                    // At most two certificates deny-listed at once, so that traffic goes on.
                    String client = RoutingScenarios.pick(random, clients()).name();
                    if (!denied.remove(client) && denied.size() < 2) {
                        denied.add(client);
                    }
                }
                case 9 -> partners = !partners;
                default -> {
                    // A route of the streams or the tunnels: removed now and then, back later, or re-pointed.
                    String host = RoutingScenarios.pick(random, List.copyOf(new TreeSet<>(OWN_HOSTS)));
                    int at = -1;
                    for (int i = 0; i < routes.size(); i++) {
                        at = host.equals(routes.get(i).host()) ? i : at;
                    }
                    if (at < 0) {
                        GenRoute own = ownRoute(random, host);
                        routes.add(random.nextInt(routes.size() + 1), own);
                        backendOf.put(own.name(), RoutingScenarios.pick(random, List.copyOf(backends.keySet())));
                    } else if (random.nextInt(3) == 0) {
                        backendOf.remove(routes.remove(at).name());
                    } else {
                        backendOf.put(routes.get(at).name(), RoutingScenarios.pick(random,
                                List.copyOf(backends.keySet())));
                        routes.set(at, random.nextBoolean() ? grant(routes.get(at)) : revoke(routes.get(at)));
                    }
                }
            }
            return new World(List.copyOf(routes), backendOf, backends, partners, Set.copyOf(denied), w.failing(),
                    w.down());
        }

        /** A removed route of the streams or the tunnels back, half the time: they have traffic of their own. */
        private World restoreOwnRoutes(World w) {
            List<GenRoute> routes = new ArrayList<>(w.routes());
            Map<String, String> backendOf = new HashMap<>(w.backendOf());
            for (String host : List.of(STREAM_HOST, WS_HOST)) {
                if (routes.stream().noneMatch(r -> host.equals(r.host())) && random.nextBoolean()) {
                    GenRoute own = ownRoute(random, host);
                    routes.add(own);
                    backendOf.put(own.name(), RoutingScenarios.pick(random, List.copyOf(w.backends().keySet())));
                }
            }
            return new World(List.copyOf(routes), backendOf, w.backends(), w.partnersTrusted(), w.denyListed(),
                    w.failing(), w.down());
        }

        /** The tunnel route's grants drawn afresh, so that a reload often takes an open tunnel's grant away. */
        private World regrantTunnels(World w) {
            List<GenRoute> routes = new ArrayList<>(w.routes());
            routes.replaceAll(r -> r.host() != null && r.host().equals(WS_HOST) ? ownRoute(random, WS_HOST) : r);
            return new World(List.copyOf(routes), w.backendOf(), w.backends(), w.partnersTrusted(), w.denyListed(),
                    w.failing(), w.down());
        }

        /**
         * {@code next} with the tunnel route, and the certificates of the tunnels' clients, as {@code now} has them:
         * every tunnel {@code now} allows stays allowed.
         */
        private World keepingTunnels(World now, World next) {
            GenRoute before = now.routes().stream().filter(r -> WS_HOST.equals(r.host())).findFirst().orElse(null);
            if (before == null) {
                return next;
            }
            List<GenRoute> routes = new ArrayList<>(next.routes());
            Map<String, String> backendOf = new HashMap<>(next.backendOf());
            next.routes().stream().filter(r -> WS_HOST.equals(r.host())).forEach(r -> backendOf.remove(r.name()));
            routes.removeIf(r -> WS_HOST.equals(r.host()));
            routes.add(before);
            String backend = now.backendOf().get(before.name());
            backendOf.put(before.name(), next.backends().containsKey(backend) ? backend
                    : new TreeSet<>(next.backends().keySet()).first());
            Set<String> denied = new HashSet<>(next.denyListed());
            tunnels.forEach(t -> denied.remove(t.call().client().name()));
            boolean partners = next.partnersTrusted() || tunnels.stream().anyMatch(t -> t.call().client() == PARTNER);
            return new World(List.copyOf(routes), backendOf, next.backends(), partners, Set.copyOf(denied),
                    next.failing(), next.down());
        }

        /** The tunnel route without any identity this client is: its upgrade is no longer allowed. */
        private World withoutTunnelGrant(World w, Workload client) {
            List<GenRoute> routes = new ArrayList<>(w.routes());
            routes.replaceAll(r -> {
                if (r.host() == null || !r.host().equals(WS_HOST)) {
                    return r;
                }
                List<GenRule> rules = new ArrayList<>();
                for (GenRule rule : r.rules()) {
                    List<String> others = rule.identities().stream().filter(name -> RoutingScenarios.IDENTITIES
                            .stream().noneMatch(i -> i.name().equals(name) && ReadmePolicyModel.is(client, i)))
                            .toList();
                    if (rule.deny() || !others.isEmpty()) {
                        rules.add(new GenRule(rule.deny(), rule.deny() ? rule.identities() : others, rule.methods(),
                                rule.paths(), rule.expires()));
                    }
                }
                return new GenRoute(r.name(), r.host(), r.prefix(), r.methods(), rules, r.dryRun(), false);
            });
            return new World(List.copyOf(routes), w.backendOf(), w.backends(), w.partnersTrusted(), w.denyListed(),
                    w.failing(), w.down());
        }

        private void changeRoute(List<GenRoute> routes, java.util.function.UnaryOperator<GenRoute> change) {
            int i = random.nextInt(routes.size());
            routes.set(i, change.apply(routes.get(i)));
        }

        /** One more identity on an allow rule, or a new allow rule. */
        private GenRoute grant(GenRoute r) {
            String who = RoutingScenarios.pick(random, RoutingScenarios.IDENTITIES).name();
            List<GenRule> rules = new ArrayList<>(r.rules());
            List<Integer> allows = new ArrayList<>();
            for (int i = 0; i < rules.size(); i++) {
                if (!rules.get(i).deny() && !rules.get(i).identities().contains(who)) {
                    allows.add(i);
                }
            }
            if (allows.isEmpty() || random.nextInt(3) == 0 && !r.shorthand()) {
                rules.add(new GenRule(false, List.of(who), List.of(), List.of(), null));
                return new GenRoute(r.name(), r.host(), r.prefix(), r.methods(), rules, r.dryRun(), false);
            }
            int i = RoutingScenarios.pick(random, allows);
            GenRule rule = rules.get(i);
            List<String> identities = new ArrayList<>(rule.identities());
            identities.add(who);
            rules.set(i, new GenRule(false, identities, rule.methods(), rule.paths(), rule.expires()));
            return new GenRoute(r.name(), r.host(), r.prefix(), r.methods(), rules, r.dryRun(), r.shorthand());
        }

        /** One identity less on an allow rule; a rule left naming nobody goes. */
        private GenRoute revoke(GenRoute r) {
            List<GenRule> rules = new ArrayList<>(r.rules());
            List<Integer> allows = new ArrayList<>();
            for (int i = 0; i < rules.size(); i++) {
                if (!rules.get(i).deny()) {
                    allows.add(i);
                }
            }
            if (allows.isEmpty()) {
                return r;
            }
            int i = RoutingScenarios.pick(random, allows);
            GenRule rule = rules.get(i);
            List<String> identities = new ArrayList<>(rule.identities());
            identities.remove(random.nextInt(identities.size()));
            if (identities.isEmpty()) {
                rules.remove(i);
                return new GenRoute(r.name(), r.host(), r.prefix(), r.methods(), rules, r.dryRun(), false);
            }
            rules.set(i, new GenRule(false, identities, rule.methods(), rule.paths(), rule.expires()));
            return new GenRoute(r.name(), r.host(), r.prefix(), r.methods(), rules, r.dryRun(), r.shorthand());
        }

        /** Other methods and paths for one rule of the route. */
        private GenRoute reshape(GenRoute r) {
            if (r.rules().isEmpty()) {
                return r;
            }
            List<GenRule> rules = new ArrayList<>(r.rules());
            int i = random.nextInt(rules.size());
            GenRule rule = rules.get(i);
            List<String> methods = random.nextBoolean() ? List.of()
                    : someOf(RoutingScenarios.METHODS, 1 + random.nextInt(2));
            Set<String> paths = new TreeSet<>();
            if (random.nextBoolean()) {
                for (int p = 1 + random.nextInt(2); p > 0; p--) {
                    String suffix = RoutingScenarios.pick(random, RoutingScenarios.RULE_SUFFIXES);
                    paths.add(r.prefix().equals("/") ? suffix : r.prefix() + suffix);
                }
            }
            rules.set(i, new GenRule(rule.deny(), rule.identities(), methods, List.copyOf(paths), rule.expires()));
            return new GenRoute(r.name(), r.host(), r.prefix(), r.methods(), rules, r.dryRun(), false);
        }

        private List<Integer> someEndpoints() {
            List<Integer> some = someOf(List.of(0, 1, 2), 1 + random.nextInt(3));
            return some.stream().sorted().toList();
        }

        private <T> List<T> someOf(List<T> from, int n) {
            return someOf(random, from, n);
        }

        private static <T> List<T> someOf(Random random, List<T> from, int n) {
            List<T> pool = new ArrayList<>(from);
            List<T> chosen = new ArrayList<>();
            for (int i = 0; i < n && !pool.isEmpty(); i++) {
                chosen.add(pool.remove(random.nextInt(pool.size())));
            }
            return List.copyOf(chosen);
        }
    }

    private static boolean own(GenRoute r) {
        return r.host() != null && OWN_HOSTS.contains(r.host());
    }

    /** The route of one of {@link #OWN_HOSTS}: one allow rule naming one to three identities. */
    private static GenRoute ownRoute(Random random, String host) {
        List<String> names = new ArrayList<>(RoutingScenarios.IDENTITIES.stream().map(NamedIdentity::name).toList());
        java.util.Collections.shuffle(names, random);
        List<String> who = List.copyOf(names.subList(0, 1 + random.nextInt(3)));
        boolean stream = host.equals(STREAM_HOST);
        return new GenRoute(stream ? "stream" : "ws", host, stream ? "/integrity" : "/ws", List.of(),
                List.of(new GenRule(false, who, List.of(), List.of(), null)), false, false);
    }

    /** The loader refuses two routes with the same host, prefix and methods. */
    private static String key(GenRoute r) {
        return r.host() + " " + r.prefix() + " " + new TreeSet<>(r.methods());
    }

    // ---- the background load ---------------------------------------------------------------------------------

    /**
     * Calls without pause until told to stop, each request judged by every configuration in force while it was on
     * its way: from the one serving when it was sent to the newest one a reload was building when it was answered.
     */
    private void keepCalling(Random random, String name) {
        Map<String, MtlsClient> open = new HashMap<>();
        // Per kept-alive connection: the generation serving before its last answered request was sent. A reload
        // since then may have closed it while it sat idle (its certificate refused), which this client only learns
        // when it sends on it: a request that finds it closed is judged from there, not from its own send.
        Map<String, Integer> aliveSince = new HashMap<>();
        int n = 0;
        try {
            while (running.get()) {
                // A steady load, not a flood: on two cores a flood would starve the sequence it runs under.
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
                int sent = healthEpoch.get();
                int from = serving;
                Call call = call(random, name + "-" + n++, served.get(from));
                byte[] body = body(random, call);
                String client = call.client().name();
                int status;
                String failure = null;
                MtlsClient c = open.remove(client);
                Integer since = aliveSince.remove(client);
                int connectionFrom = from;
                boolean reused = false;
                try {
                    if (c == null || random.nextInt(10) == 0) {
                        if (c != null) {
                            c.close();
                        }
                        c = MtlsClient.connect(fixture.proxy().address(), contexts.get(client), null, null);
                    } else {
                        reused = true;
                        connectionFrom = since != null ? since : from;
                    }
                    MtlsClient.Response response = exchange(c, call, body);
                    status = response.status();
                    if ("close".equalsIgnoreCase(response.header("connection"))) {
                        c.close();
                    } else {
                        open.put(client, c);
                        aliveSince.put(client, from);
                    }
                } catch (IOException e) {
                    status = -1;
                    failure = e.toString();
                    if (c != null) {
                        c.close();
                    }
                }
                int to = Math.max(attempting, serving);
                int answered = healthEpoch.get();
                List<String> why = new ArrayList<>();
                boolean matched = false;
                // An answer is judged by the configurations in force while the request was on its way; a closed
                // connection also by those since the connection was last seen alive.
                for (int i = status == -1 ? connectionFrom : from; i <= to && !matched; i++) {
                    Expected expected = served.get(i).expect(call, unsure(i, sent, answered));
                    if (expected == null) {
                        // Refused by one of them: no answer, or any answer another of them gives.
                        matched = status == -1;
                        why.add("generation " + (i + 1) + ": certificate refused");
                    } else if (status != -1) {
                        String problem = judge(call, body, expected, status);
                        matched = problem == null;
                        why.add("generation " + (i + 1) + ": " + (problem == null ? "agrees" : problem));
                    } else if (expected.mayBeCut()) {
                        // An endpoint it may have been on was stopped under it, after its answer began.
                        matched = true;
                        arrivals.excuse(call.tag());
                        outcomes.merge("cut by a stopped endpoint", 1, Integer::sum);
                    } else {
                        why.add("generation " + (i + 1) + ": an answer");
                    }
                }
                if (status == -1) {
                    // cut by a reload or a stopped endpoint: it may or may not have reached the backend
                    arrivals.claim(call.tag());
                }
                ends.put(call.tag(), end(call.client(), status == 200 && matched, status,
                        status == -1 ? connectionFrom : from, to, failure));
                if (!matched) {
                    failures.add("== background " + call.tag() + " from " + client + ", generations "
                            + ((status == -1 ? connectionFrom : from) + 1)
                            + ".." + (to + 1) + (reused ? " on a kept-alive connection" : " on a new connection")
                            + ": got " + (status == -1 ? failure : status) + "\n  "
                            + String.join("\n  ", why) + "\n  sent: " + head(call, body).replace("\r\n", "\\r\\n"));
                }
            }
        } catch (Exception e) {
            failures.add("background " + name + " stopped: " + e);
        } finally {
            for (MtlsClient c : open.values()) {
                try {
                    c.close();
                } catch (IOException ignored) {
                    // closing was all that was left
                }
            }
        }
    }

    /**
     * How a request ended, for {@link #ends}: {@code whole} when answered 200 as the model says, {@code cut by
     * refusal} when a closed connection is explained by generations {@code from..to} refusing its certificate.
     */
    private String end(Workload client, boolean whole, int status, int from, int to, String failure) {
        if (whole) {
            return "whole";
        }
        boolean refused = false;
        for (int i = from; i <= to; i++) {
            refused |= served.get(i).refuses(client);
        }
        return status == -1 && refused ? "cut by refusal" : status == -1 ? "cut: " + failure : "answered " + status;
    }

    /**
     * Per backend, the endpoints of generation {@code index} whose verdict was open at some point between health
     * epochs {@code from} and {@code to}, and the endpoints stopped or started meanwhile: empty when the model was
     * sure throughout.
     */
    private Open unsure(int index, int from, int to) {
        Map<String, Set<Integer>> open = new HashMap<>();
        Set<Integer> stopping = new TreeSet<>();
        Set<Integer> killed = new TreeSet<>();
        Set<Integer> drained = new TreeSet<>();
        for (int e = from; e <= to; e++) {
            if (e % 2 == 1) {
                Window w = windows.get((e - 1) / 2);
                w.health().getOrDefault(index, Map.of())
                        .forEach((backend, unsure) -> open.computeIfAbsent(backend, b -> new TreeSet<>()).addAll(unsure));
                stopping.addAll(w.stopping());
                killed.addAll(w.killed());
                drained.addAll(w.drained());
            }
        }
        return new Open(open, stopping, killed, drained);
    }

    // ---- transfers and tunnels ---------------------------------------------------------------------------------

    /**
     * A request of the stream route sent from a thread of its own, its bodies paced so that they are still on their
     * way when the foreground reloads: a request body of {@code upload} bytes (none when negative), with
     * Content-Length or chunked (then with its SHA-256 as a trailer), maybe behind {@code Expect: 100-continue}, and
     * an answer of {@code download} bytes of {@link TestBackend.IntegrityBody}'s pattern, checked as it arrives.
     */
    private final class Transfer implements Runnable {
        final Call call;
        /** The health epoch when it was sent. */
        final int sent;
        final int from;
        final long upload;
        final boolean chunked;
        final boolean expectContinue;
        final long download;
        private final long seed;
        final Thread thread;
        /** Counted down once the head is known to have been read, or the body is under way, or it is over. */
        final CountDownLatch headRead = new CountDownLatch(1);
        /** Whether an answer began before {@link #headRead} was counted down: {@code from} alone judged it. */
        volatile boolean synced;
        volatile int status = -1;
        volatile Map<String, List<String>> headers = Map.of();
        volatile String failure;
        volatile String sentSha256;
        volatile long received;
        volatile long firstWrongByte = -1;

        Transfer(Call call, int sent, int from, long upload, boolean chunked, boolean expectContinue, long download,
                long seed) {
            this.call = call;
            this.sent = sent;
            this.from = from;
            this.upload = upload;
            this.chunked = chunked;
            this.expectContinue = expectContinue;
            this.download = download;
            this.seed = seed;
            this.thread = new Thread(this, "transfer-" + call.tag());
        }

        String header(String name) {
            List<String> values = headers.get(name);
            return values == null ? null : values.get(0);
        }

        @Override
        public void run() {
            MtlsClient c = null;
            int pattern = Integer.parseInt(call.target().replaceAll(".*pattern=(\\d+).*", "$1"));
            BodyPatternCheck sink = upload < 0 && !expectContinue ? new TellingBegun(pattern, this)
                    : new BodyPatternCheck(TestBackend.IntegrityBody.pattern(pattern));
            try {
                c = MtlsClient.connect(fixture.proxy().address(), contexts.get(call.client().name()), null, null);
                c.send(call.method() + " " + call.target() + " HTTP/1.1\r\nHost: " + call.host() + "\r\nX-Case: "
                        + call.tag() + "\r\n" + (upload < 0 ? "" : chunked ? "Transfer-Encoding: chunked\r\n"
                                : "Content-Length: " + upload + "\r\n")
                        + (expectContinue ? "Expect: 100-continue\r\n" : "") + "\r\n");
                if (expectContinue) {
                    MtlsClient.Response first = c.readResponse(sink, true);
                    synced = true;
                    headRead.countDown();
                    if (first.status() != 100) {
                        headers = first.headers();
                        status = first.status();
                        return;
                    }
                }
                if (upload >= 0) {
                    headRead.countDown();
                    try {
                        sendBody(c);
                    } catch (IOException e) {
                        // A refusal answered early may end the connection under the rest of the body: read it.
                        failure = "while sending the body: " + e;
                    }
                } else {
                    sentSha256 = sha256(new byte[0]);
                }
                sink.reset();
                MtlsClient.Response r = c.readResponse(sink, true);
                received = sink.count();
                firstWrongByte = sink.firstMismatch();
                headers = r.headers();
                synced |= upload < 0;
                status = r.status();
            } catch (Exception e) {
                failure = failure == null ? e.toString() : failure + ", then " + e;
            } finally {
                headRead.countDown();
                if (c != null) {
                    try {
                        c.close();
                    } catch (IOException ignored) {
                        // closing was all that was left
                    }
                }
            }
        }

        /** The body in pieces of up to 32 KiB a couple of milliseconds apart, hashed as it goes. */
        private void sendBody(MtlsClient c) throws IOException {
            Random bytes = new Random(seed);
            MessageDigest digest = sha256Digest();
            OutputStream out = c.output();
            for (long left = upload; left > 0;) {
                byte[] piece = new byte[(int) Math.min(left, 1 + bytes.nextInt(32 * 1024))];
                bytes.nextBytes(piece);
                digest.update(piece);
                if (chunked) {
                    out.write((Integer.toHexString(piece.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
                }
                out.write(piece);
                if (chunked) {
                    out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
                }
                out.flush();
                left -= piece.length;
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
            }
            sentSha256 = HexFormat.of().formatHex(digest.digest());
            if (chunked) {
                out.write(("0\r\n" + TestBackend.IntegrityBody.SHA256_TRAILER + ": " + sentSha256 + "\r\n\r\n")
                        .getBytes(StandardCharsets.US_ASCII));
                out.flush();
            }
        }
    }

    /** Checks an answer's body against its pattern, telling {@code begun} on the first byte that its head was read. */
    private static final class TellingBegun extends BodyPatternCheck {
        private final Transfer begun;

        TellingBegun(int pattern, Transfer begun) {
            super(TestBackend.IntegrityBody.pattern(pattern));
            this.begun = begun;
        }

        @Override
        protected void passed(long offset, byte[] b, int off, int len) {
            if (offset == 0 && len > 0) {
                begun.synced = true;
                begun.headRead.countDown();
            }
        }
    }

    /** A download under way, and the endpoint serving it that is to stop gracefully, or -1. */
    private record Busy(Transfer download, int endpoint) {
    }

    /** A WebSocket upgrade the foreground sent; {@code pending} until its 101 has been read. */
    private final class Tunnel {
        private final Call call;
        private final MtlsClient client;
        private final int from;
        boolean pending;
        /** The endpoint its upgrade request arrived at, and how often that one had been killed then. */
        private final int endpoint;
        private final int killsAtOpen;

        Tunnel(Call call, MtlsClient client, int from, boolean pending, int endpoint) {
            this.call = call;
            this.client = client;
            this.from = from;
            this.pending = pending;
            this.endpoint = endpoint;
            this.killsAtOpen = kills.get(endpoint);
        }

        int endpoint() {
            return endpoint;
        }

        int killsAtOpen() {
            return killsAtOpen;
        }

        Call call() {
            return call;
        }

        MtlsClient client() {
            return client;
        }

        int from() {
            return from;
        }

        boolean pending() {
            return pending;
        }
    }

    /** A client's frame: FIN, binary, masked as RFC 6455 5.3 requires, with a 16-bit length past 125 bytes. */
    static byte[] maskedBinaryFrame(byte[] payload, int maskKey) {
        return maskedFrame(0x82, payload, maskKey);
    }

    /** As {@link #maskedBinaryFrame}, with its first byte (FIN and opcode) given: 0x81 for text. */
    static byte[] maskedFrame(int first, byte[] payload, int maskKey) {
        ByteArrayOutputStream frame = new ByteArrayOutputStream();
        frame.write(first);
        if (payload.length < 126) {
            frame.write(0x80 | payload.length);
        } else {
            frame.write(0x80 | 126);
            frame.write(payload.length >>> 8);
            frame.write(payload.length & 0xff);
        }
        byte[] mask = {(byte) (maskKey >>> 24), (byte) (maskKey >>> 16), (byte) (maskKey >>> 8), (byte) maskKey};
        frame.writeBytes(mask);
        for (int i = 0; i < payload.length; i++) {
            frame.write(payload[i] ^ mask[i % 4]);
        }
        return frame.toByteArray();
    }

    /** A server's frame: FIN, binary, unmasked, up to 64 KiB; its payload. */
    static byte[] readBinaryFrame(InputStream in) throws IOException {
        return readFrame(in, 0x82);
    }

    /** As {@link #readBinaryFrame}, for a frame whose first byte (FIN and opcode) is {@code expected}. */
    static byte[] readFrame(InputStream in, int expected) throws IOException {
        int first = in.read();
        int second = in.read();
        if (first != expected || second < 0 || (second & 0x80) != 0) {
            throw new IOException("not an unmasked final frame " + expected + ": " + first + " " + second);
        }
        int length = second & 0x7f;
        if (length == 126) {
            length = (in.read() << 8) | in.read();
        }
        byte[] payload = in.readNBytes(length);
        if (payload.length != length) {
            throw new java.io.EOFException("frame truncated");
        }
        return payload;
    }

    // ---- requests and their judgement ------------------------------------------------------------------------

    /** All clients: the six of the routing scenarios and the partner. */
    private static List<Workload> clients() {
        List<Workload> all = new ArrayList<>(RoutingScenarios.WORKLOADS);
        all.add(PARTNER);
        return all;
    }

    /** A request at the world's generated routes, without a server name; now and then from the partner. */
    private static Call call(Random random, String tag, World world) {
        Call c = RoutingScenarios.call(random, tag, world.routes().stream()
                .filter(r -> !own(r)).toList());
        Workload client = random.nextInt(8) == 0 ? PARTNER : c.client();
        return new Call(tag, client, null, c.method(), c.target(), c.host());
    }

    /** A body for a third of the requests, up to 4 KiB. */
    private static byte[] body(Random random, Call call) {
        if (call.method().equals("HEAD") || random.nextInt(3) != 0) {
            return null;
        }
        byte[] body = new byte[random.nextInt(4096)];
        random.nextBytes(body);
        return body;
    }

    /**
     * The README's "Retries and failover": a bodiless request with an idempotent method is sent once more when the
     * connection it went out on closed before an answer.
     */
    private static boolean sentAgain(String method, boolean bodiless) {
        return bodiless && Set.of("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE").contains(method);
    }

    private static String head(Call call, byte[] body) {
        return call.method() + " " + call.target() + " HTTP/1.1\r\nHost: " + call.host() + "\r\nX-Case: "
                + call.tag() + "\r\n" + (body == null ? "" : "Content-Length: " + body.length + "\r\n") + "\r\n";
    }

    private static MtlsClient.Response exchange(MtlsClient c, Call call, byte[] body) throws IOException {
        c.output().write(head(call, body).getBytes(StandardCharsets.ISO_8859_1));
        if (body != null) {
            c.output().write(body);
        }
        c.output().flush();
        return call.method().equals("HEAD") ? c.readHeadResponse() : c.readResponse();
    }

    /**
     * Null when the status is the README's and, for a forwarded request, one of the route's backend's endpoints
     * received it as the README says: target, Host, method, body, and the client's certificate in XFCC.
     */
    private String judge(Call call, byte[] body, Expected expected, int status) throws InterruptedException {
        Verdict v = expected.verdict();
        String wrong = expected.statusProblem(status, sentAgain(call.method(), body == null));
        if (wrong != null) {
            return wrong;
        }
        outcomes.merge(String.valueOf(status), 1, Integer::sum);
        if (expected.mayBeCut()) {
            // A request an endpoint was stopped under may have reached it first, and been sent again (a bodiless
            // GET, say) to another, or answered 502.
            arrivals.excuse(call.tag());
        }
        if (status != 200) {
            return null;
        }
        if (expected.failover()) {
            outcomes.merge(FAILOVER, 1, Integer::sum);
        }
        Arrival a = arrivals.await(call.tag());
        if (a == null) {
            return "a 200 without any backend receiving the request";
        }
        TestBackend.Recorded r = a.recorded();
        String xfcc = r.headers().get("x-forwarded-client-cert");
        String spiffeId = call.client().spiffeId();
        if (!expected.endpoints().contains(a.endpoint())) {
            return "received by endpoint " + a.endpoint() + ", the route's backend has " + expected.endpoints();
        } else if (!r.uri().equals(v.target())) {
            return "the backend received " + r.uri() + ", the README says " + v.target();
        } else if (!Objects.equals(r.headers().get("Host"), v.host())) {
            return "the backend received Host " + r.headers().get("Host") + ", the README says " + v.host();
        } else if (!r.method().equals(call.method())) {
            return "the backend received method " + r.method();
        } else if (r.bodyBytes() != (body == null ? 0 : body.length)) {
            return "the backend received " + r.bodyBytes() + " body bytes";
        } else if (xfcc == null || !xfcc.toLowerCase(java.util.Locale.ROOT).contains("hash="
                + fingerprints.get(call.client().name())) || !xfcc.contains("URI=" + spiffeId)) {
            return "the backend received XFCC " + xfcc + ", not " + call.client().name() + "'s certificate";
        }
        return null;
    }

    // ---- what the backends received --------------------------------------------------------------------------

    record Arrival(int endpoint, TestBackend.Recorded recorded) {
    }

    /** Every request the three backends received, by the case tag the test gave it; health checks counted apart. */
    private final class Arrivals {
        private final Map<String, Arrival> byCase = new HashMap<>();
        private final Set<String> claimed = new HashSet<>();
        /** Requests received twice, and those of them the model lets be (see {@link #excuse}). */
        private final Set<String> repeated = new HashSet<>();
        private final Set<String> excused = new HashSet<>();
        final int[] probes = new int[3];
        final List<String> unexpected = new ArrayList<>();

        synchronized void drain() throws InterruptedException {
            for (int i = 0; i < endpoints.size(); i++) {
                TestBackend.Recorded r;
                while ((r = endpoints.get(i).nextRequest(0, TimeUnit.SECONDS)) != null) {
                    String tag = r.headers().get("X-Case");
                    if (tag != null) {
                        if (byCase.put(tag, new Arrival(i, r)) != null) {
                            repeated.add(tag);
                        }
                    } else if (HEALTH_CHECK_AGENT.equals(r.headers().get("User-Agent"))) {
                        probes[i]++;
                    } else {
                        unexpected.add(r.method() + " " + r.uri() + " at endpoint " + i);
                    }
                }
            }
        }

        /** The arrival of a request answered 200: recorded before the backend answered, so there by now. */
        Arrival await(String tag) throws InterruptedException {
            for (int tries = 0; tries < 100; tries++) {
                synchronized (this) {
                    drain();
                    Arrival a = byCase.get(tag);
                    if (a != null) {
                        claimed.add(tag);
                        return a;
                    }
                }
                Thread.sleep(10);
            }
            return null;
        }

        /** A request that may have reached a backend without the test seeing its answer. */
        synchronized void claim(String tag) {
            claimed.add(tag);
        }

        /**
         * A request that may have reached a backend and then another, or the same one again: the README's "Retries
         * and failover" sends a bodiless idempotent request once more when the connection it went out on closed
         * before an answer, which a stopped endpoint does; also a request that may have got no answer.
         */
        synchronized void excuse(String tag) {
            claimed.add(tag);
            excused.add(tag);
        }

        /** The endpoint that received the request last: one of {@link #await}'s tags. */
        synchronized int endpointOf(String tag) {
            return byCase.get(tag).endpoint();
        }

        /** Requests received more than once that no stopped endpoint accounts for. */
        synchronized List<String> repeatedUnexcused() {
            return repeated.stream().filter(tag -> !excused.contains(tag)).sorted()
                    .map(tag -> "case " + tag + " received twice").toList();
        }

        synchronized List<String> unclaimed() {
            List<String> wrong = new ArrayList<>();
            byCase.forEach((tag, a) -> {
                if (!claimed.contains(tag)) {
                    wrong.add(tag + ": " + a.recorded().method() + " " + a.recorded().uri() + " at endpoint "
                            + a.endpoint());
                }
            });
            return wrong;
        }
    }

    // ---- configuration -----------------------------------------------------------------------------------------

    private RunningProxy.Builder builder(World w) {
        RunningProxy.Builder b = RunningProxy.builder(fixture.pki());
        identities().forEach(b::identity);
        backends(w).forEach(b::backend);
        routes(w).forEach(b::route);
        anchors(w).forEach((name, anchor) -> {
            if (!name.equals(TestPki.ANCHOR)) {
                b.trustAnchor(name, anchor);
            }
        });
        return b.revocation(revocation(w));
    }

    /** The world as the proxy's configuration: {@code base} with its anchors, identities, routes and backends. */
    private ProxyConfig config(World w, ProxyConfig base) {
        return base.withTrustAnchors(anchors(w)).withIdentities(identities()).withRoutes(routes(w))
                .withBackends(backends(w)).withRevocation(revocation(w));
    }

    private Map<String, TrustAnchorConfig> anchors(World w) {
        Map<String, TrustAnchorConfig> anchors = new LinkedHashMap<>();
        anchors.put(TestPki.ANCHOR, new TrustAnchorConfig(fixture.pki().caPem()));
        if (w.partnersTrusted()) {
            anchors.put(PARTNERS, new TrustAnchorConfig(partnersCa));
        }
        return anchors;
    }

    /** The identities never change; each is scoped to the test CA, so the partner is none of them. */
    private static Map<String, IdentityConfig> identities() {
        Map<String, IdentityConfig> identities = new LinkedHashMap<>();
        for (NamedIdentity i : RoutingScenarios.IDENTITIES) {
            identities.put(i.name(), IdentityConfig.builder().trustAnchor(TestPki.ANCHOR).spiffeId(i.spiffeId())
                    .spiffeIdPrefix(i.spiffeIdPrefix()).dnsSan(i.dnsSan()).build());
        }
        return identities;
    }

    private static List<RouteConfig> routes(World w) {
        return w.routes().stream().map(r -> routeConfig(r, w.backendOf().get(r.name()))).toList();
    }

    private Map<String, BackendConfig> backends(World w) {
        Map<String, BackendConfig> backends = new LinkedHashMap<>();
        w.backends().forEach((name, pool) -> backends.put(name, BackendConfig.of(pool.endpoints().stream()
                .map(i -> URI.create(endpoints.get(i).url())).toList(), null).withHealthCheck(pool.check())
                .withCoolDown(COOL_DOWN)));
        return backends;
    }

    private RevocationConfig revocation(World w) {
        List<String> denied = w.denyListed().stream().sorted().map(fingerprints::get).toList();
        return denied.isEmpty() ? null : new RevocationConfig(null, denied, null);
    }

    private static RouteConfig routeConfig(GenRoute r, String backend) {
        List<String> allow = r.shorthand() ? r.rules().get(0).identities() : List.of();
        List<RuleConfig> rules = r.shorthand() ? List.of() : r.rules().stream().map(rule -> new RuleConfig(
                rule.deny() ? null : rule.identities(), rule.deny() ? rule.identities() : null, rule.methods(),
                rule.paths(), rule.expires())).toList();
        return new RouteConfig(r.name(), r.host(), r.prefix(), r.methods(), backend, allow, rules,
                r.dryRun() ? PolicyMode.DRY_RUN : PolicyMode.ENFORCE, null);
    }

    // ---- helpers -----------------------------------------------------------------------------------------------

    /** Failures from the foreground and the background, the first few in full. */
    private static final class Failures {
        private final ConcurrentLinkedQueue<String> all = new ConcurrentLinkedQueue<>();
        private final AtomicInteger count = new AtomicInteger();

        void add(String failure) {
            if (count.incrementAndGet() <= 12) {
                all.add(failure);
            }
        }

        List<String> all() {
            List<String> list = new ArrayList<>(all);
            if (count.get() > list.size()) {
                list.add("... and " + (count.get() - list.size()) + " more");
            }
            return list;
        }
    }

    private static String sha256(byte[] der) {
        return HexFormat.of().formatHex(sha256Digest().digest(der));
    }

    private static MessageDigest sha256Digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }

    private static String seed(String what) {
        return what + " (seed " + SEED + ": -Dmtlsproxy.test.seed=" + SEED + " runs this sequence again)";
    }
}
