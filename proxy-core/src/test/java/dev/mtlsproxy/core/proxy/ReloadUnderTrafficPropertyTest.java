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
import dev.mtlsproxy.core.proxy.ReadmePolicyModel.Verdict;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Call;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRoute;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRule;
import dev.mtlsproxy.core.proxy.RoutingScenarios.NamedIdentity;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Workload;
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
 * certificate, a CA bundle that is not there, a moved listener), whose mutations must then change nothing.
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
 * when it no longer does, as they open if their 101 comes after the reload.
 *
 * <p>Meanwhile two clients keep calling without pause; each of their requests must be answered whole, as one of the
 * configurations in force while it was on its way would answer it (never a 5xx: no backend ever goes away), or cut
 * only when one of those refused its certificate.
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
    /** Checks frequent enough that a check left running after its backend went is seen within the test. */
    static final List<HealthCheckConfig> CHECKS = List.of(
            new HealthCheckConfig("/health", Duration.ofMillis(100), Duration.ofSeconds(1), 1, 1),
            new HealthCheckConfig("/healthz", Duration.ofMillis(150), Duration.ofSeconds(1), 2, 3),
            new HealthCheckConfig("/health", Duration.ofMillis(200), Duration.ofSeconds(1), 2, 2));
    static final String HEALTH_CHECK_AGENT = "mtls-proxy-health-check";
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
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Map<String, Integer> outcomes = new ConcurrentHashMap<>();
    private Path partnersCa;
    /** What the proxy logs when a reload closes an open connection. */
    private LogCapture closes;

    /** What a generation is configured with, in the test's own terms. */
    record Pool(List<Integer> endpoints, HealthCheckConfig check) {
    }

    record World(List<GenRoute> routes, Map<String, String> backendOf, Map<String, Pool> backends,
            boolean partnersTrusted, Set<String> denyListed) {

        boolean refuses(Workload client) {
            return denyListed.contains(client.name()) || client == PARTNER && !partnersTrusted;
        }

        /** The README's answer, and the endpoints one of which must receive it; null for a refused certificate. */
        Expected expect(Call call) {
            if (refuses(call.client())) {
                return null;
            }
            Verdict v = ReadmePolicyModel.judge(routes, RoutingScenarios.IDENTITIES, call, Instant.now());
            return new Expected(v, v.route() == null ? List.of() : backends.get(backendOf.get(v.route())).endpoints());
        }

        String describe() {
            return RoutingScenarios.describe(routes) + "\nbackend of each route: " + new TreeMap<>(backendOf)
                    + "\nbackends: " + new TreeMap<>(backends) + "\npartner CA trusted: " + partnersTrusted
                    + "\ndeny-listed: " + new TreeSet<>(denyListed);
        }
    }

    record Expected(Verdict verdict, List<Integer> endpoints) {
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
        World first = new World(List.copyOf(routes), new HashMap<>(), new HashMap<>(), true, Set.of());
        first.backends().put("alpha", new Pool(List.of(0), CHECKS.get(0)));
        first.backends().put("beta", new Pool(List.of(1, 2), null));
        first.routes().forEach(r -> first.backendOf().put(r.name(), random.nextBoolean() ? "alpha" : "beta"));
        served.add(first);

        List<Thread> load = new ArrayList<>();
        try (LogCapture leaks = LogCapture.of(ResourceLeakDetector.class);
                LogCapture closed = LogCapture.of(Reverification.class)) {
            closes = closed;
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

            arrivals.drain();
            assertThat(arrivals.unclaimed()).as(seed("requests a backend received that the model sent nowhere"))
                    .isEmpty();
            assertThat(arrivals.unexpected).as(seed("other requests the backends received")).isEmpty();
            assertThat(proxy.metrics().get("mtls.proxy.config.generation").gauge().value())
                    .as(seed("the generation gauge")).isEqualTo((double) served.size());
            // A generator that stopped producing an outcome would prove nothing about it.
            assertThat(outcomes).as(seed("outcomes " + outcomes)).containsKeys("200", "403", "404", "refused",
                    "closed by reload", "failed reload", "transfer 200", "tunnel opened", "tunnel kept across a reload",
                    "tunnel closed by reload", "tunnel closed by reload as it opens");
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

    // ---- the generated sequence ------------------------------------------------------------------------------

    /** The foreground: reloads, each followed by a burst judged by the configuration it made serve. */
    private final class Sequence {
        private final RunningProxy proxy;
        private final ProxyConfig base;
        private final Random random;
        /** A kept-alive connection per client. */
        private final Map<String, MtlsClient> open = new HashMap<>();
        private int routeNames = 100;
        private int requests;
        int invalid;
        private final Map<ReloadFailureReason, Integer> failedByReason = new HashMap<>();
        /** Open WebSocket tunnels, and upgrades whose 101 is still to come. */
        private final List<Tunnel> tunnels = new ArrayList<>();

        Sequence(RunningProxy proxy, ProxyConfig base, Random random) {
            this.proxy = proxy;
            this.base = base;
            this.random = random;
        }

        void run(int steps) throws Exception {
            burst("start");
            for (int step = 1; step <= steps; step++) {
                World now = served.get(serving);
                List<Transfer> transfers = startTransfers(now);
                openTunnel(step, now);
                World next = now;
                for (int m = 1 + random.nextInt(2); m > 0; m--) {
                    next = mutate(next);
                }
                next = restoreOwnRoutes(next);
                // A tunnel's grant taken away: a pending one's most of the time, so that some close as they open.
                Tunnel pending = tunnels.stream().filter(Tunnel::pending).findAny().orElse(null);
                if (pending != null && random.nextInt(3) != 0) {
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
                    reload(step, now, next);
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
            reload(0, now, new World(now.routes(), backendOf, backends, now.partnersTrusted(), now.denyListed()));
            burst("the last step");

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

        private void reload(int step, World now, World next) throws Exception {
            served.add(next);
            int index = served.size() - 1;
            attempting = index;
            long generation = proxy.reload(c -> config(next, base));
            serving = index;
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
                Transfer t = new Transfer(call, serving, upload, upload >= 0 && random.nextBoolean(),
                        upload >= 0 && random.nextInt(3) != 0, download, random.nextLong());
                t.thread.start();
                started.add(t);
            }
            for (Transfer t : started) {
                if (!t.headRead.await(10, TimeUnit.SECONDS)) {
                    failures.add("transfer " + t.call.tag() + ": no sign of its head being read within 10s");
                }
            }
            return started;
        }

        /** Hundreds of KiB to a few MiB. */
        private long size() {
            return 256 * 1024 + random.nextInt(3 * 1024 * 1024);
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
            List<String> why = new ArrayList<>();
            boolean matched = false;
            if (t.thread.isAlive()) {
                why.add("still running after 30s");
            } else if (t.status == -1) {
                for (int i = t.from; i <= to && !matched; i++) {
                    matched = served.get(i).refuses(t.call.client());
                }
                why.add(matched ? "cut, its certificate refused" : "cut (" + t.failure + ") with its certificate "
                        + "accepted by generations " + (t.from + 1) + ".." + (to + 1));
                arrivals.claim(t.call.tag());
                outcomes.merge(matched ? "transfer cut by reload" : "transfer cut", 1, Integer::sum);
            } else {
                for (int i = t.from; i <= (t.synced ? t.from : to) && !matched; i++) {
                    Expected expected = served.get(i).expect(t.call);
                    String problem = expected == null ? "certificate refused, yet answered"
                            : judgeTransfer(t, expected);
                    matched = problem == null;
                    why.add("generation " + (i + 1) + ": " + (matched ? "agrees" : problem));
                }
                if (matched) {
                    outcomes.merge("transfer " + t.status, 1, Integer::sum);
                }
            }
            if (!matched) {
                failures.add("== step " + step + ", transfer " + t.call.tag() + " from " + t.call.client().name()
                        + ": " + t.call.method() + " " + t.call.target() + (t.upload < 0 ? ""
                        : " with " + t.upload + " body bytes" + (t.chunked ? " chunked" : "")
                        + (t.expectContinue ? " after 100-continue" : "")) + "\n  " + String.join("\n  ", why));
            }
        }

        private String judgeTransfer(Transfer t, Expected expected) throws InterruptedException {
            Verdict v = expected.verdict();
            if (t.status != v.status()) {
                return "got " + t.status + ", the README says " + v.status();
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
        private void openTunnel(int step, World now) throws Exception {
            if (tunnels.size() >= 4 || random.nextInt(3) == 0) {
                return;
            }
            boolean late = random.nextBoolean();
            String target = "/ws" + (late ? "?ms=1000" : "");
            Call call = new Call("w" + requests++, client(now, WS_HOST, "GET", target), null, "GET", target, WS_HOST);
            Expected expected = now.expect(call);
            MtlsClient c = null;
            String problem = null;
            try {
                c = MtlsClient.connect(proxy.address(), contexts.get(call.client().name()), null, null);
                c.send(call.method() + " " + call.target() + " HTTP/1.1\r\nHost: " + call.host() + "\r\nX-Case: "
                        + call.tag() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                        + "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
                boolean forwarded = expected != null && expected.verdict().status() == 200;
                if (forwarded && late) {
                    problem = arrivedAt(call, expected);
                    if (problem == null) {
                        tunnels.add(new Tunnel(call, c, serving, true));
                        return;
                    }
                } else {
                    MtlsClient.Response r = c.readResponse();
                    if (expected == null) {
                        problem = "answered " + r.status() + " though its certificate is refused";
                    } else if (r.status() != (forwarded ? 101 : expected.verdict().status())) {
                        problem = "got " + r.status() + ", the README says "
                                + (forwarded ? "101 (forwarded)" : expected.verdict().status());
                    } else if (forwarded) {
                        problem = arrivedAt(call, expected);
                        problem = problem != null ? problem : echo(c);
                        if (problem == null) {
                            tunnels.add(new Tunnel(call, c, serving, false));
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
                String problem = null;
                String outcome;
                try {
                    if (t.pending()) {
                        MtlsClient.Response r = t.client().readResponse();
                        problem = r.status() == 101 ? null : "the upgrade answered " + r.status() + " after the reload";
                    }
                    if (problem != null) {
                        outcome = null;
                    } else if (allowed) {
                        problem = echo(t.client());
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
            return new World(List.copyOf(routes), backendOf, backends, partners, Set.copyOf(denied));
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
            return new World(List.copyOf(routes), backendOf, w.backends(), w.partnersTrusted(), w.denyListed());
        }

        /** The tunnel route's grants drawn afresh, so that a reload often takes an open tunnel's grant away. */
        private World regrantTunnels(World w) {
            List<GenRoute> routes = new ArrayList<>(w.routes());
            routes.replaceAll(r -> r.host() != null && r.host().equals(WS_HOST) ? ownRoute(random, WS_HOST) : r);
            return new World(List.copyOf(routes), w.backendOf(), w.backends(), w.partnersTrusted(), w.denyListed());
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
            return new World(List.copyOf(routes), w.backendOf(), w.backends(), w.partnersTrusted(), w.denyListed());
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
                List<String> why = new ArrayList<>();
                boolean matched = false;
                // An answer is judged by the configurations in force while the request was on its way; a closed
                // connection also by those since the connection was last seen alive.
                for (int i = status == -1 ? connectionFrom : from; i <= to && !matched; i++) {
                    Expected expected = served.get(i).expect(call);
                    if (expected == null) {
                        // Refused by one of them: no answer, or any answer another of them gives.
                        matched = status == -1;
                        why.add("generation " + (i + 1) + ": certificate refused");
                    } else if (status != -1) {
                        String problem = judge(call, body, expected, status);
                        matched = problem == null;
                        why.add("generation " + (i + 1) + ": " + (problem == null ? "agrees" : problem));
                    } else {
                        why.add("generation " + (i + 1) + ": an answer");
                    }
                }
                if (status == -1) {
                    arrivals.claim(call.tag()); // cut by a reload: it may or may not have reached the backend
                }
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

    // ---- transfers and tunnels ---------------------------------------------------------------------------------

    /**
     * A request of the stream route sent from a thread of its own, its bodies paced so that they are still on their
     * way when the foreground reloads: a request body of {@code upload} bytes (none when negative), with
     * Content-Length or chunked (then with its SHA-256 as a trailer), maybe behind {@code Expect: 100-continue}, and
     * an answer of {@code download} bytes of {@link TestBackend.IntegrityBody}'s pattern, checked as it arrives.
     */
    private final class Transfer implements Runnable {
        final Call call;
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

        Transfer(Call call, int from, long upload, boolean chunked, boolean expectContinue, long download,
                long seed) {
            this.call = call;
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
            PatternCheck sink = new PatternCheck(pattern, upload < 0 && !expectContinue ? this : null);
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
                received = sink.count;
                firstWrongByte = sink.firstWrong;
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

    /** Counts the body it is given and notes the first byte off {@link TestBackend.IntegrityBody}'s pattern. */
    private static final class PatternCheck extends OutputStream {
        private final int pattern;
        /** Told on the first byte that the answer has begun, so its head was read; null for none. */
        private final Transfer begun;
        long count;
        long firstWrong = -1;

        PatternCheck(int pattern, Transfer begun) {
            this.pattern = pattern;
            this.begun = begun;
        }

        void reset() {
            count = 0;
            firstWrong = -1;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (begun != null && count == 0 && len > 0) {
                begun.synced = true;
                begun.headRead.countDown();
            }
            for (int i = 0; i < len; i++) {
                if (firstWrong < 0 && b[off + i] != TestBackend.IntegrityBody.at(pattern, count + i)) {
                    firstWrong = count + i;
                }
            }
            count += len;
        }
    }

    /** A WebSocket upgrade the foreground sent; {@code pending} until its 101 has been read. */
    private static final class Tunnel {
        private final Call call;
        private final MtlsClient client;
        private final int from;
        boolean pending;

        Tunnel(Call call, MtlsClient client, int from, boolean pending) {
            this.call = call;
            this.client = client;
            this.from = from;
            this.pending = pending;
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
        ByteArrayOutputStream frame = new ByteArrayOutputStream();
        frame.write(0x82);
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
        int first = in.read();
        int second = in.read();
        if (first != 0x82 || second < 0 || (second & 0x80) != 0) {
            throw new IOException("not an unmasked final binary frame: " + first + " " + second);
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
        if (status != v.status()) {
            return "got " + status + ", the README says " + v.status();
        }
        outcomes.merge(String.valueOf(status), 1, Integer::sum);
        if (status != 200) {
            return null;
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
        final int[] probes = new int[3];
        final List<String> unexpected = new ArrayList<>();

        synchronized void drain() throws InterruptedException {
            for (int i = 0; i < endpoints.size(); i++) {
                TestBackend.Recorded r;
                while ((r = endpoints.get(i).nextRequest(0, TimeUnit.SECONDS)) != null) {
                    String tag = r.headers().get("X-Case");
                    if (tag != null) {
                        if (byCase.put(tag, new Arrival(i, r)) != null) {
                            unexpected.add("case " + tag + " received twice");
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
                .map(i -> URI.create(endpoints.get(i).url())).toList(), null).withHealthCheck(pool.check())));
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
