package dev.mtlsproxy.core.metrics;

import dev.mtlsproxy.core.backend.BackendFailures;
import dev.mtlsproxy.core.proxy.ReloadFailureReason;
import dev.mtlsproxy.core.proxy.ReloadStep;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import java.util.function.ToDoubleFunction;

/**
 * Every metric the proxy exports, defined once, from the injected registry. Names and labels are a public contract
 * (docs/METRICS.md, the alert rules and the dashboard use them). Label values come only from enums and configured
 * names, never from paths, SANs, DNs or addresses, so cardinality is bounded by the configuration.
 *
 * <p>Thread-safe: meters are looked up in concurrent maps. The per-request path finds its meters by route or
 * backend name and a small key of label values, never by building {@link Tags} (which sorts and copies).
 */
public final class ProxyMetrics {

    static final String PREFIX = "mtls.proxy.";
    private static final Set<String> KNOWN_METHODS = Set.of("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
            "OPTIONS");
    /** Sub-millisecond resolution: proxy overhead lives there. */
    private static final Duration[] LATENCY_BUCKETS = {
        Duration.ofNanos(100_000), Duration.ofNanos(250_000), Duration.ofNanos(500_000), Duration.ofMillis(1),
        Duration.ofNanos(2_500_000), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(25),
        Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(250), Duration.ofMillis(500),
        Duration.ofSeconds(1), Duration.ofMillis(2_500), Duration.ofSeconds(5), Duration.ofSeconds(10)};
    private static final String[] STATUS_CLASSES = {"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"};
    private static final double DAY = 86_400;
    private static final double[] LIFETIME_BUCKETS_SECONDS = {
        3_600, 6 * 3_600, DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY, 365 * DAY};

    private final MeterRegistry registry;
    private final Map<Tags, Counter> counters = new ConcurrentHashMap<>();
    private final Map<Tags, Timer> timers = new ConcurrentHashMap<>();
    /*
     * Both event loops change this gauge on every request: a LongAdder gives each thread its own cell instead of
     * one cache line that bounces between the cores twice per request (issue #8).
     */
    private final Map<String, LongAdder> requestsInFlight = new ConcurrentHashMap<>();
    private final Map<String, ListenerMeters> listenerMeters = new ConcurrentHashMap<>();
    private final Map<String, RouteMeters> routeMeters = new ConcurrentHashMap<>();
    private final Map<String, BackendMeters> backendMeters = new ConcurrentHashMap<>();
    private final Map<String, DistributionSummary> clientLifetimes = new ConcurrentHashMap<>();
    private final Set<String> registeredBackends = ConcurrentHashMap.newKeySet();

    private final AtomicLong configGeneration = new AtomicLong();
    private final AtomicLong lastReloadSuccess = new AtomicLong();
    private final MultiGauge certificateExpiry;
    private final MultiGauge crlNextUpdate;

    public ProxyMetrics(MeterRegistry registry) {
        this.registry = registry;
        Gauge.builder(PREFIX + "config.generation", configGeneration, AtomicLong::get)
                .description("Generation of the running configuration, 1 at start").register(registry);
        Gauge.builder(PREFIX + "config.last.reload.success.timestamp", lastReloadSuccess, AtomicLong::get)
                .description("When the running configuration was loaded, as Unix time")
                .baseUnit("seconds").register(registry);
        certificateExpiry = MultiGauge.builder(PREFIX + "certificate.expiry.timestamp")
                .description("notAfter of a certificate in use, as Unix time")
                .baseUnit("seconds")
                .register(registry);
        crlNextUpdate = MultiGauge.builder(PREFIX + "crl.next.update.timestamp")
                .description("nextUpdate of a CRL in use, as Unix time; past it the CRL is stale")
                .baseUnit("seconds")
                .register(registry);
        counter("crl.stale.accepted", Tags.empty());
    }

    public MeterRegistry registry() {
        return registry;
    }

    // ---- TLS and connections -----------------------------------------------------------------------------------

    /**
     * @param connectionLimit the listener's connection limit in force now; a reload may change it
     * @param openConnections the listener's connections open now, as its connection limit counts them: one count,
     *                        so the gauge and the limit cannot disagree
     */
    public void listenerStarted(String listener, Supplier<Number> connectionLimit, Supplier<Number> openConnections) {
        for (HandshakeFailureReason reason : HandshakeFailureReason.values()) {
            handshakeCounter(listener, "failure", reason.label());
        }
        handshakeCounter(listener, "success", "none");
        Gauge.builder(PREFIX + "connections.open", openConnections)
                .description("Client connections open now").tag("listener", listener).register(registry);
        requestsInFlight(listener);
        counter("connections.accepted", Tags.of("listener", listener));
        counter("connections.closed", Tags.of("listener", listener));
        connectionsRefused(listener);
        // A supplier gauge holds its supplier strongly (see backendRegistered).
        Gauge.builder(PREFIX + "connections.limit", connectionLimit)
                .description("Client connections the listener holds open at most; one more is closed at accept")
                .tag("listener", listener).register(registry);
    }

    /** Connections closed as soon as they were accepted because the listener had its limit open already. */
    public Counter connectionsRefused(String listener) {
        return counter("connections.refused", Tags.of("listener", listener, "reason", "limit"));
    }

    /**
     * Admin connections closed because a request did not arrive whole within the admin listener's request timeout
     * (a client dripping its request, slowloris). Admin only: the mTLS listeners have no such timeout.
     */
    public Counter adminRequestTimeouts() {
        return counter("admin.request.timeouts", Tags.empty());
    }

    /**
     * Admin connections idle between requests closed to admit a new one when every slot of the admin listener was
     * taken. Admin only: an mTLS listener at its limit refuses the new connection instead.
     */
    public Counter adminConnectionsEvicted() {
        return counter("admin.connections.evicted", Tags.empty());
    }

    /**
     * @param group the key exchange group the handshake settled on (X25519MLKEM768, X25519...), or null when there
     *              was none
     */
    public void handshakeSucceeded(String listener, long nanos, String identity, String group,
            Duration remainingLifetime) {
        ListenerMeters meters = listenerMeters(listener);
        meters.handshakes.increment();
        meters.handshakeDuration().record(nanos, TimeUnit.NANOSECONDS);
        meters.keyExchange(group == null ? "none" : group).increment();
        DistributionSummary lifetimes = clientLifetimes.get(identity);
        if (lifetimes == null) {
            lifetimes = clientLifetimes.computeIfAbsent(identity, name -> DistributionSummary
                    .builder(PREFIX + "client.certificate.remaining")
                    .description("Remaining lifetime of client certificates presented at handshake")
                    .baseUnit("seconds")
                    .tag("identity", name)
                    .serviceLevelObjectives(LIFETIME_BUCKETS_SECONDS)
                    .register(registry));
        }
        lifetimes.record(Math.max(0, remainingLifetime.toSeconds()));
    }

    public void handshakeFailed(String listener, HandshakeFailureReason reason) {
        listenerMeters(listener).failures.get(reason).increment();
    }

    private ListenerMeters listenerMeters(String listener) {
        ListenerMeters meters = listenerMeters.get(listener);
        return meters != null ? meters : listenerMeters.computeIfAbsent(listener, l -> {
            Map<HandshakeFailureReason, Counter> failures = new EnumMap<>(HandshakeFailureReason.class);
            for (HandshakeFailureReason reason : HandshakeFailureReason.values()) {
                failures.put(reason, handshakeCounter(l, "failure", reason.label()));
            }
            return new ListenerMeters(l, handshakeCounter(l, "success", "none"), failures);
        });
    }

    /** The per-handshake meters of a listener, found by its name alone (see {@link RouteMeters}). */
    private final class ListenerMeters {
        private final String listener;
        private final Counter handshakes;
        private final Map<HandshakeFailureReason, Counter> failures;
        /** Registered at the first successful handshake, as before the cache. */
        private volatile Timer handshakeDuration;
        /** By group; a handful at most, as many as the listener's {@code groups:}. */
        private final Map<String, Counter> keyExchanges = new ConcurrentHashMap<>();

        ListenerMeters(String listener, Counter handshakes, Map<HandshakeFailureReason, Counter> failures) {
            this.listener = listener;
            this.handshakes = handshakes;
            this.failures = failures;
        }

        Timer handshakeDuration() {
            Timer timer = handshakeDuration;
            if (timer == null) {
                timer = latency("tls.handshake.duration",
                        "Connection accepted to TLS handshake complete, successful handshakes", "listener", listener);
                handshakeDuration = timer;
            }
            return timer;
        }

        Counter keyExchange(String group) {
            Counter counter = keyExchanges.get(group);
            return counter != null ? counter : keyExchanges.computeIfAbsent(group,
                    g -> counter("tls.key.exchanges", Tags.of("listener", listener, "group", g)));
        }
    }

    private Counter handshakeCounter(String listener, String result, String reason) {
        return counter("tls.handshakes", Tags.of("listener", listener, "result", result, "reason", reason));
    }

    public void connectionOpened(String listener) {
        counter("connections.accepted", Tags.of("listener", listener)).increment();
    }

    public void connectionClosed(String listener) {
        counter("connections.closed", Tags.of("listener", listener)).increment();
    }

    private LongAdder requestsInFlight(String listener) {
        LongAdder existing = requestsInFlight.get(listener);
        if (existing != null) {
            return existing;
        }
        return requestsInFlight.computeIfAbsent(listener, l -> {
            LongAdder value = new LongAdder();
            Gauge.builder(PREFIX + "requests.in.flight", value, LongAdder::sum)
                    .description("Requests received and not yet answered").tag("listener", l).register(registry);
            return value;
        });
    }

    // ---- requests and decisions --------------------------------------------------------------------------------

    public void requestStarted(String listener) {
        requestsInFlight(listener).increment();
    }

    /**
     * @param status 0 when the connection closed before a status was sent
     */
    public void requestFinished(String listener, String route, String method, int status, String decision,
            long nanos, long bytesIn, long bytesOut) {
        requestsInFlight(listener).decrement();
        RouteMeters meters = routeMeters(route);
        meters.requests(method(method), statusClass(status), decision).increment();
        meters.duration.record(nanos, TimeUnit.NANOSECONDS);
        if (bytesIn > 0) {
            meters.bodyIn().increment(bytesIn);
        }
        if (bytesOut > 0) {
            meters.bodyOut().increment(bytesOut);
        }
    }

    public void decision(String route, String rule, String decision) {
        routeMeters(route).decisions(rule, decision).increment();
    }

    static String statusClass(int status) {
        if (status <= 0) {
            return "none";
        }
        int statusClass = status / 100;
        return statusClass < STATUS_CLASSES.length ? STATUS_CLASSES[statusClass] : statusClass + "xx";
    }

    private RouteMeters routeMeters(String route) {
        RouteMeters meters = routeMeters.get(route);
        return meters != null ? meters : routeMeters.computeIfAbsent(route, RouteMeters::new);
    }

    /** Label values of the requests counter; every part is an interned label value, so equality is cheap. */
    private record RequestKey(String method, String statusClass, String decision) {
    }

    private record DecisionKey(String rule, String decision) {
    }

    /**
     * The meters of one route, found by the route's name alone on the per-request path: building {@link Tags} and
     * looking each meter up by them cost several sorted copies per request. The meters themselves are the same
     * ones {@link #counter} registers, created on first use exactly as before (byte counters only once a body was
     * seen).
     */
    private final class RouteMeters {
        private final String route;
        private final Timer duration;
        private final Map<RequestKey, Counter> requests = new ConcurrentHashMap<>();
        private final Map<DecisionKey, Counter> decisions = new ConcurrentHashMap<>();
        private volatile Counter bodyIn;
        private volatile Counter bodyOut;

        RouteMeters(String route) {
            this.route = route;
            this.duration = latency("request.duration", "Request head to end of response", "route", route);
        }

        Counter requests(String method, String statusClass, String decision) {
            RequestKey key = new RequestKey(method, statusClass, decision);
            Counter counter = requests.get(key);
            return counter != null ? counter : requests.computeIfAbsent(key, k -> counter("requests",
                    Tags.of("route", route, "method", method, "status_class", statusClass, "decision", decision)));
        }

        Counter decisions(String rule, String decision) {
            DecisionKey key = new DecisionKey(rule, decision);
            Counter counter = decisions.get(key);
            return counter != null ? counter : decisions.computeIfAbsent(key, k -> counter("authz.decisions",
                    Tags.of("route", route, "rule", rule, "decision", decision)));
        }

        Counter bodyIn() {
            Counter counter = bodyIn;
            if (counter == null) {
                counter = counter("request.body.bytes", Tags.of("route", route));
                bodyIn = counter;
            }
            return counter;
        }

        Counter bodyOut() {
            Counter counter = bodyOut;
            if (counter == null) {
                counter = counter("response.body.bytes", Tags.of("route", route));
                bodyOut = counter;
            }
            return counter;
        }
    }

    /** Methods are client-chosen tokens: anything unusual shares one label value. */
    static String method(String method) {
        return KNOWN_METHODS.contains(method) ? method : "other";
    }

    // ---- backends ----------------------------------------------------------------------------------------------

    public void backendRegistered(String backend, Supplier<Number> idleConnections, Supplier<Number> healthy) {
        if (registeredBackends.contains(backend)) {
            return; // once per name: a reload's suppliers read the current generation themselves
        }
        // Supplier gauges hold their supplier strongly; the (obj, fn) form would keep only a weak reference to
        // these lambdas and report NaN after the next GC.
        Gauge.builder(PREFIX + "backend.pool.idle.connections", idleConnections)
                .description("Idle keep-alive connections pooled for reuse").tag("backend", backend)
                .register(registry);
        Gauge.builder(PREFIX + "backend.healthy.endpoints", healthy)
                .description("Endpoints considered healthy; 0 means the backend is down").tag("backend", backend)
                .register(registry);
        for (String result : new String[] {"ok", "connect_error", "timeout", "failed", "unavailable"}) {
            counter("backend.requests", Tags.of("backend", backend, "result", result));
        }
        counter("backend.retries", Tags.of("backend", backend));
        counter("backend.tunnel.cuts", Tags.of("backend", backend));
        // At 0 from the start, like the rest: a series that appears with its first increment hides that increment
        // from rate() and increase(), so the first connect error after a start or reload would go unseen.
        for (String reason : BackendFailures.CONNECT_REASONS) {
            counter("backend.connect.errors", Tags.of("backend", backend, "reason", reason));
        }
        // Only now: should the registry refuse one of these, the next reload tries again (reloads are serialised).
        registeredBackends.add(backend);
    }

    /** Response headers arrived; the request's result is counted when it ends ({@link #backendSucceeded}). */
    public void backendResponse(String backend, long nanosToHeaders) {
        backendMeters(backend).response().record(nanosToHeaders, TimeUnit.NANOSECONDS);
    }

    /**
     * A request whose response headers arrived ended without a backend failure. Counted at the end, not with the
     * headers: a body that then stalls or breaks counts as timeout or failed instead, never as both.
     */
    public void backendSucceeded(String backend) {
        backendMeters(backend).ok().increment();
    }

    private BackendMeters backendMeters(String backend) {
        BackendMeters meters = backendMeters.get(backend);
        return meters != null ? meters : backendMeters.computeIfAbsent(backend, b -> new BackendMeters(
                counter("backend.requests", Tags.of("backend", b, "result", "ok")),
                latency("backend.response", "Request sent to backend response headers received", "backend", b)));
    }

    /** The per-response meters of a backend, found by its name alone (see {@link RouteMeters}). */
    private record BackendMeters(Counter ok, Timer response) {
    }

    /** @param result connect_error, timeout, failed or unavailable */
    public void backendFailed(String backend, String result) {
        counter("backend.requests", Tags.of("backend", backend, "result", result)).increment();
    }

    /**
     * A request sent to another endpoint because connecting to the previous one failed, or sent once more on a new
     * connection because the backend closed the one it was on before answering.
     */
    public void backendRetried(String backend) {
        counter("backend.retries", Tags.of("backend", backend)).increment();
    }

    /**
     * A WebSocket tunnel ended, and its backend connection was closed with bytes the client had sent still queued for
     * it, because the backend stopped taking them for the listener's idle timeout.
     */
    public void backendTunnelCut(String backend) {
        counter("backend.tunnel.cuts", Tags.of("backend", backend)).increment();
    }

    /** @param reason one of {@link BackendFailures#CONNECT_REASONS} */
    public void backendConnectError(String backend, String reason) {
        counter("backend.connect.errors", Tags.of("backend", backend, "reason", reason)).increment();
    }

    // ---- certificates, configuration, logs ---------------------------------------------------------------------

    /**
     * One certificate in use, as the expiry gauge labels it. A certificate belongs to a listener (roles
     * {@code server}, {@code client_ca}) or to a backend (roles {@code backend_client}, {@code backend_ca}); the
     * other label is empty, which Prometheus treats as absent. Index is its position within its role.
     */
    public record CertificateExpiry(String role, String listener, String backend, int index,
            long notAfterEpochSeconds) {

        public CertificateExpiry {
            listener = listener == null ? "" : listener;
            backend = backend == null ? "" : backend;
        }

        /** A certificate of a listener: {@code server} or {@code client_ca}. */
        public CertificateExpiry(String role, String listener, int index, long notAfterEpochSeconds) {
            this(role, listener, "", index, notAfterEpochSeconds);
        }
    }

    /**
     * Replaces the whole set of certificate expiry rows: a renewed certificate shows its new date and a removed
     * one disappears, which plain gauges (registered once, value fixed) would not do after a reload.
     */
    public void certificates(List<CertificateExpiry> rows) {
        List<MultiGauge.Row<?>> gaugeRows = new ArrayList<>(rows.size());
        for (CertificateExpiry row : rows) {
            // Every row has the same label names: Prometheus needs one label set per metric name.
            gaugeRows.add(MultiGauge.Row.of(Tags.of("role", row.role(), "listener", row.listener(), "backend",
                    row.backend(), "index", Integer.toString(row.index())), row.notAfterEpochSeconds()));
        }
        certificateExpiry.register(gaugeRows, true);
    }

    /**
     * The Prometheus info-metric convention ({@code prometheus_build_info}, {@code node_exporter_build_info}): one
     * series, always 1, whose labels carry the build, so {@code count by (version)} shows a rollout's progress and
     * {@code * on (instance) group_left (version)} attaches the version to any other series. One value per
     * process: the labels never change while it runs.
     *
     * @param revision the git commit the build was made from, or {@code unknown}
     */
    public void buildInfo(String version, String revision) {
        Gauge.builder(PREFIX + "build.info", () -> 1)
                .description("The running build: always 1, labelled with its version and git commit")
                .tags("version", version, "revision", revision)
                .register(registry);
    }

    /**
     * Records a configuration generation going live; the gauges read holders, so later reloads move them. Every
     * generation after the first is a successful reload.
     */
    public void configLoaded(long generation, long epochSeconds) {
        configGeneration.set(generation);
        lastReloadSuccess.set(epochSeconds);
        Counter success = counter("config.reloads", Tags.of("result", "success", "reason", "none"));
        for (ReloadFailureReason reason : ReloadFailureReason.values()) {
            counter("config.reloads", Tags.of("result", "failure", "reason", reason.label()));
        }
        for (ReloadStep step : ReloadStep.values()) {
            counter("config.reload.step.failures", Tags.of("step", step.label()));
        }
        if (generation > 1) {
            success.increment();
        }
    }

    /** A reload that changed nothing; the old generation keeps serving. */
    public void reloadFailed(ReloadFailureReason reason) {
        counter("config.reloads", Tags.of("result", "failure", "reason", reason.label())).increment();
    }

    /**
     * A step after a reload's swap failed: the reload went through and counts as a success, but left this step
     * undone (the log says what that means).
     */
    public void reloadStepFailed(ReloadStep step) {
        counter("config.reload.step.failures", Tags.of("step", step.label())).increment();
    }

    /** A handshake (or re-verification) accepted on a CRL past its nextUpdate, under staleCrl: insecureAllow. */
    public void staleCrlAccepted() {
        counter("crl.stale.accepted", Tags.empty()).increment();
    }

    /**
     * One CRL in use: its trust anchor, its position among that anchor's CRLs, and its nextUpdate; positive infinity
     * for a CRL without one (optional in X.509), which never goes stale.
     */
    public record CrlNextUpdate(String anchor, int index, double nextUpdateEpochSeconds) {
    }

    /** Replaces the CRL rows, so a renewed CRL shows its new nextUpdate and a removed one disappears. */
    public void crls(List<CrlNextUpdate> crls) {
        List<MultiGauge.Row<?>> rows = new ArrayList<>(crls.size());
        for (CrlNextUpdate crl : crls) {
            rows.add(MultiGauge.Row.of(Tags.of("anchor", crl.anchor(), "index", Integer.toString(crl.index())),
                    crl.nextUpdateEpochSeconds()));
        }
        crlNextUpdate.register(rows, true);
    }

    public <T> void accessLogDropped(T log, ToDoubleFunction<T> dropped) {
        FunctionCounter.builder(PREFIX + "access.log.dropped", log, dropped)
                .description("Access log lines dropped because the queue was full").register(registry);
    }

    public Counter handshakeLogSuppressed() {
        return counter("handshake.log.suppressed", Tags.empty());
    }

    /** A latency histogram with the sub-millisecond buckets, one per (name, label value). */
    private Timer latency(String name, String description, String label, String value) {
        return timers.computeIfAbsent(Tags.of("metric", name, label, value), k -> Timer.builder(PREFIX + name)
                .description(description)
                .tag(label, value)
                .serviceLevelObjectives(LATENCY_BUCKETS)
                .register(registry));
    }

    private Counter counter(String name, Tags tags) {
        return counters.computeIfAbsent(tags.and("metric", name), k -> Counter.builder(PREFIX + name)
                .description(describe(name))
                .tags(tags)
                .register(registry));
    }

    private static String describe(String name) {
        return switch (name) {
            case "tls.handshakes" -> "TLS handshakes by result and failure reason";
            case "tls.key.exchanges" -> "Successful TLS handshakes by key exchange group";
            case "requests" -> "Requests by route, method, status class and decision";
            case "authz.decisions" -> "Policy decisions by route and rule";
            case "backend.requests" -> "Requests sent to backends by result";
            case "backend.connect.errors" -> "Backend connection failures by reason";
            case "connections.refused" -> "Client connections closed at accept, by reason: limit (the listener"
                    + " had maxConnections open)";
            case "admin.request.timeouts" -> "Admin listener connections closed because a request did not arrive"
                    + " whole within its request timeout";
            case "admin.connections.evicted" -> "Admin listener connections idle between requests closed to admit a"
                    + " new one when every connection slot was taken";
            case "config.reloads" -> "Configuration reloads by result and failure reason";
            case "config.reload.step.failures" -> "Successful reloads that left a step after going live undone, by"
                    + " step";
            case "crl.stale.accepted" -> "Client certificates accepted on a stale CRL (staleCrl: insecureAllow)";
            case "backend.tunnel.cuts" -> "Ended WebSocket tunnels whose backend connection was closed with bytes"
                    + " still queued for it: the backend stopped taking them for the listener's idle timeout";
            case "backend.retries" -> "Requests retried after a failed connection attempt, or sent once more on a"
                    + " new connection after the backend closed one unanswered";
            default -> name.replace('.', ' ').toLowerCase(Locale.ROOT);
        };
    }
}
