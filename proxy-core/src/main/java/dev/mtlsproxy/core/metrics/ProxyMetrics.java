package dev.mtlsproxy.core.metrics;

import dev.mtlsproxy.core.proxy.ReloadFailureReason;
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
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import java.util.function.ToDoubleFunction;

/**
 * Every metric the proxy exports, defined once, from the injected registry. Names and labels are a public contract
 * (docs/METRICS.md, the alert rules and the dashboard use them). Label values come only from enums and configured
 * names, never from paths, SANs, DNs or addresses, so cardinality is bounded by the configuration.
 *
 * <p>Thread-safe: meters are looked up in concurrent maps, so the hot path does not rebuild meter ids.
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
    private static final double DAY = 86_400;
    private static final double[] LIFETIME_BUCKETS_SECONDS = {
        3_600, 6 * 3_600, DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY, 365 * DAY};

    private final MeterRegistry registry;
    private final Map<Tags, Counter> counters = new ConcurrentHashMap<>();
    private final Map<Tags, Timer> timers = new ConcurrentHashMap<>();
    private final Map<String, AtomicInteger> openConnections = new ConcurrentHashMap<>();
    private final Map<String, AtomicInteger> requestsInFlight = new ConcurrentHashMap<>();
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

    public void listenerStarted(String listener) {
        for (HandshakeFailureReason reason : HandshakeFailureReason.values()) {
            handshakeCounter(listener, "failure", reason.label());
        }
        handshakeCounter(listener, "success", "none");
        openConnections(listener);
        requestsInFlight(listener);
        counter("connections.accepted", Tags.of("listener", listener));
        counter("connections.closed", Tags.of("listener", listener));
    }

    public void handshakeSucceeded(String listener, long nanos, String identity, Duration remainingLifetime) {
        handshakeCounter(listener, "success", "none").increment();
        latency("tls.handshake.duration", "Connection accepted to TLS handshake complete, successful handshakes",
                "listener", listener).record(nanos, TimeUnit.NANOSECONDS);
        clientLifetimes.computeIfAbsent(identity, name -> DistributionSummary
                .builder(PREFIX + "client.certificate.remaining")
                .description("Remaining lifetime of client certificates presented at handshake")
                .baseUnit("seconds")
                .tag("identity", name)
                .serviceLevelObjectives(LIFETIME_BUCKETS_SECONDS)
                .register(registry)).record(Math.max(0, remainingLifetime.toSeconds()));
    }

    public void handshakeFailed(String listener, HandshakeFailureReason reason) {
        handshakeCounter(listener, "failure", reason.label()).increment();
    }

    private Counter handshakeCounter(String listener, String result, String reason) {
        return counter("tls.handshakes", Tags.of("listener", listener, "result", result, "reason", reason));
    }

    public void connectionOpened(String listener) {
        counter("connections.accepted", Tags.of("listener", listener)).increment();
        openConnections(listener).incrementAndGet();
    }

    public void connectionClosed(String listener) {
        counter("connections.closed", Tags.of("listener", listener)).increment();
        openConnections(listener).decrementAndGet();
    }

    private AtomicInteger openConnections(String listener) {
        return openConnections.computeIfAbsent(listener, l -> {
            AtomicInteger value = new AtomicInteger();
            Gauge.builder(PREFIX + "connections.open", value, AtomicInteger::get)
                    .description("Client connections open now").tag("listener", l).register(registry);
            return value;
        });
    }

    private AtomicInteger requestsInFlight(String listener) {
        return requestsInFlight.computeIfAbsent(listener, l -> {
            AtomicInteger value = new AtomicInteger();
            Gauge.builder(PREFIX + "requests.in.flight", value, AtomicInteger::get)
                    .description("Requests received and not yet answered").tag("listener", l).register(registry);
            return value;
        });
    }

    // ---- requests and decisions --------------------------------------------------------------------------------

    public void requestStarted(String listener) {
        requestsInFlight(listener).incrementAndGet();
    }

    /**
     * @param status 0 when the connection closed before a status was sent
     */
    public void requestFinished(String listener, String route, String method, int status, String decision,
            long nanos, long bytesIn, long bytesOut) {
        requestsInFlight(listener).decrementAndGet();
        String statusClass = status <= 0 ? "none" : (status / 100) + "xx";
        counter("requests", Tags.of("route", route, "method", method(method), "status_class", statusClass,
                "decision", decision)).increment();
        latency("request.duration", "Request head to end of response", "route", route)
                .record(nanos, TimeUnit.NANOSECONDS);
        if (bytesIn > 0) {
            counter("request.body.bytes", Tags.of("route", route)).increment(bytesIn);
        }
        if (bytesOut > 0) {
            counter("response.body.bytes", Tags.of("route", route)).increment(bytesOut);
        }
    }

    public void decision(String route, String rule, String decision) {
        counter("authz.decisions", Tags.of("route", route, "rule", rule, "decision", decision)).increment();
    }

    /** Methods are client-chosen tokens: anything unusual shares one label value. */
    static String method(String method) {
        return KNOWN_METHODS.contains(method) ? method : "other";
    }

    // ---- backends ----------------------------------------------------------------------------------------------

    public void backendRegistered(String backend, Supplier<Number> idleConnections, Supplier<Number> healthy) {
        if (!registeredBackends.add(backend)) {
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
    }

    public void backendResponse(String backend, long nanosToHeaders) {
        counter("backend.requests", Tags.of("backend", backend, "result", "ok")).increment();
        latency("backend.response", "Request sent to backend response headers received", "backend", backend)
                .record(nanosToHeaders, TimeUnit.NANOSECONDS);
    }

    /** @param result connect_error, timeout, failed or unavailable */
    public void backendFailed(String backend, String result) {
        counter("backend.requests", Tags.of("backend", backend, "result", result)).increment();
    }

    /** A request sent to another endpoint because connecting to the previous one failed. */
    public void backendRetried(String backend) {
        counter("backend.retries", Tags.of("backend", backend)).increment();
    }

    /** @param reason refused, timeout, tls or other */
    public void backendConnectError(String backend, String reason) {
        counter("backend.connect.errors", Tags.of("backend", backend, "reason", reason)).increment();
    }

    // ---- certificates, configuration, logs ---------------------------------------------------------------------

    /** One certificate in use, as the expiry gauge labels it; index is its position within its role. */
    public record CertificateExpiry(String role, String listener, int index, long notAfterEpochSeconds) {
    }

    /**
     * Replaces the whole set of certificate expiry rows: a renewed certificate shows its new date and a removed
     * one disappears, which plain gauges (registered once, value fixed) would not do after a reload.
     */
    public void certificates(List<CertificateExpiry> rows) {
        List<MultiGauge.Row<?>> gaugeRows = new ArrayList<>(rows.size());
        for (CertificateExpiry row : rows) {
            gaugeRows.add(MultiGauge.Row.of(Tags.of("role", row.role(), "listener", row.listener(), "index",
                    Integer.toString(row.index())), row.notAfterEpochSeconds()));
        }
        certificateExpiry.register(gaugeRows, true);
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
        if (generation > 1) {
            success.increment();
        }
    }

    /** A reload that changed nothing; the old generation keeps serving. */
    public void reloadFailed(ReloadFailureReason reason) {
        counter("config.reloads", Tags.of("result", "failure", "reason", reason.label())).increment();
    }

    /** A handshake (or re-verification) accepted on a CRL past its nextUpdate, under staleCrl: insecureAllow. */
    public void staleCrlAccepted() {
        counter("crl.stale.accepted", Tags.empty()).increment();
    }

    /** One CRL in use: its trust anchor, its position among that anchor's CRLs, and its nextUpdate. */
    public record CrlNextUpdate(String anchor, int index, long nextUpdateEpochSeconds) {
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
            case "requests" -> "Requests by route, method, status class and decision";
            case "authz.decisions" -> "Policy decisions by route and rule";
            case "backend.requests" -> "Requests sent to backends by result";
            case "backend.connect.errors" -> "Backend connection failures by reason";
            case "config.reloads" -> "Configuration reloads by result and failure reason";
            case "crl.stale.accepted" -> "Client certificates accepted on a stale CRL (staleCrl: insecureAllow)";
            case "backend.retries" -> "Requests retried on another endpoint after a failed connection attempt";
            default -> name.replace('.', ' ').toLowerCase(Locale.ROOT);
        };
    }
}
