package dev.mtlsproxy.core.testing;

import dev.mtlsproxy.config.AccessLogConfig;
import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.IoTransport;
import dev.mtlsproxy.config.KeyExchangeGroup;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.ServerTlsConfig;
import dev.mtlsproxy.config.SessionResumption;
import dev.mtlsproxy.config.TlsVersion;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.config.WorkersConfig;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import dev.mtlsproxy.core.proxy.ProxyServer;
import dev.mtlsproxy.core.proxy.ReloadException;
import io.netty.channel.uring.IoUring;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Assumptions;

/** Builds a configuration around a {@link TestPki} and runs the real proxy on 127.0.0.1:0. */
public final class RunningProxy implements AutoCloseable {

    private final ProxyServer server;
    private final BlockingQueue<AccessLogEntry> accessLog;
    private final MeterRegistry registry;

    private RunningProxy(ProxyServer server, BlockingQueue<AccessLogEntry> accessLog, MeterRegistry registry) {
        this.server = server;
        this.accessLog = accessLog;
        this.registry = registry;
    }

    /** The configuration serving now. */
    public ProxyConfig config() {
        return server.config();
    }

    /** Reloads with a changed configuration; returns the new generation. */
    public long reload(UnaryOperator<ProxyConfig> change) throws ReloadException {
        return server.reload(change.apply(server.config()));
    }

    /** The registry the proxy exports its metrics to. */
    public MeterRegistry metrics() {
        return registry;
    }

    /** A counter's value by Micrometer name and tags, 0 when it was never created. */
    public double count(String name, String... tags) {
        var counter = registry.find(name).tags(tags).counter();
        return counter == null ? 0 : counter.count();
    }

    /** Failed handshakes counted so far, by reason. */
    public Map<String, Double> handshakeFailures() {
        Map<String, Double> counts = new TreeMap<>();
        for (Counter c : registry.find("mtls.proxy.tls.handshakes").tag("result", "failure").counters()) {
            counts.merge(c.getId().getTag("reason"), c.count(), Double::sum);
        }
        return counts;
    }

    /**
     * The reason whose failed-handshake count went up since {@code before} ({@link #handshakeFailures}), waiting up to
     * 5 s for the proxy to count it: a TLS 1.3 client learns of its refusal before the proxy has counted it.
     */
    public String awaitNewHandshakeFailure(Map<String, Double> before) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (System.nanoTime() < deadline) {
            for (Map.Entry<String, Double> now : handshakeFailures().entrySet()) {
                if (now.getValue() > before.getOrDefault(now.getKey(), 0.0)) {
                    return now.getKey();
                }
            }
            Thread.sleep(5);
        }
        return "(no handshake failure counted)";
    }

    public static Builder builder(TestPki pki) {
        return new Builder(pki);
    }

    public InetSocketAddress address() {
        return server.addresses().get(0);
    }

    public ProxyServer server() {
        return server;
    }

    /** Entries the proxy logged, in order; a test polls with a timeout. */
    public BlockingQueue<AccessLogEntry> accessLog() {
        return accessLog;
    }

    @Override
    public void close() {
        server.close();
    }

    public static final class Builder {
        private final TestPki pki;
        private final Map<String, IdentityConfig> identities = new LinkedHashMap<>();
        private final List<RouteConfig> routes = new ArrayList<>();
        private final Map<String, String> backendUrls = new LinkedHashMap<>();
        private final Map<String, BackendConfig> backendConfigs = new LinkedHashMap<>();
        private TlsVersion minVersion = TlsVersion.TLS_1_2;
        private SessionResumption sessionResumption = SessionResumption.NONE;
        private List<KeyExchangeGroup> groups;
        private Duration idleTimeout;
        private Duration handshakeTimeout;
        private Integer maxConnections;
        private Duration requestHeaderTimeout;
        private Duration responseTimeout = Duration.ofSeconds(10);
        private AccessLog accessLogOverride;
        private MeterRegistry registry = new SimpleMeterRegistry();
        private final Map<String, TrustAnchorConfig> extraAnchors = new LinkedHashMap<>();
        private RevocationConfig revocation;
        private Clock clock = Clock.systemUTC();
        /**
         * Two loops on the default transport, or on the one {@code -Dmtlsproxy.test.transport=io_uring} (or
         * epoll, nio) names: that runs every end-to-end test on it.
         */
        private WorkersConfig workers = new WorkersConfig(2, null, null, IoTransport.valueOf(
                System.getProperty("mtlsproxy.test.transport", "auto").toUpperCase(java.util.Locale.ROOT)));

        private Builder(TestPki pki) {
            this.pki = pki;
        }

        public Builder identity(String name, String spiffeId) {
            identities.put(name, IdentityConfig.spiffe(spiffeId));
            return this;
        }

        public Builder identity(String name, IdentityConfig identity) {
            identities.put(name, identity);
            return this;
        }

        /** Trusts a second CA, as its own anchor; the test PKI's CA is anchor {@link TestPki#ANCHOR}. */
        public Builder trustAnchor(String name, java.nio.file.Path caBundle) {
            extraAnchors.put(name, new TrustAnchorConfig(caBundle));
            return this;
        }

        /**
         * Trusts a CA bundle as configured in full (CRLs, their scope); named {@link TestPki#ANCHOR}, it replaces the
         * test PKI's own anchor.
         */
        public Builder trustAnchor(String name, TrustAnchorConfig anchor) {
            extraAnchors.put(name, anchor);
            return this;
        }

        public Builder backend(String name, String url) {
            backendUrls.put(name, url);
            return this;
        }

        /** A backend configured in full: endpoints, TLS, timeouts, health check. */
        public Builder backend(String name, BackendConfig config) {
            backendConfigs.put(name, config);
            return this;
        }

        public Builder responseTimeout(Duration timeout) {
            this.responseTimeout = timeout;
            return this;
        }

        public Builder route(String name, String pathPrefix, String backend, String... allow) {
            return route(new RouteConfig(name, null, pathPrefix, List.of(), backend, List.of(allow)));
        }

        public Builder route(RouteConfig route) {
            routes.add(route);
            return this;
        }

        /** Sends access log entries here instead of to {@link RunningProxy#accessLog()}. */
        public Builder accessLog(AccessLog accessLog) {
            this.accessLogOverride = accessLog;
            return this;
        }

        /** Exports the metrics to {@code registry}; a fresh {@link SimpleMeterRegistry} unless set. */
        public Builder registry(MeterRegistry registry) {
            this.registry = registry;
            return this;
        }

        public Builder revocation(RevocationConfig revocation) {
            this.revocation = revocation;
            return this;
        }

        /** The proxy's clock, which judges certificate dates; TLS session lifetimes keep BoringSSL's own time. */
        public Builder clock(Clock clock) {
            this.clock = clock;
            return this;
        }

        public Builder sessionResumption(SessionResumption resumption) {
            this.sessionResumption = resumption;
            return this;
        }

        public Builder minVersion(TlsVersion version) {
            this.minVersion = version;
            return this;
        }

        /** The listener's key exchange groups; the config's default unless set. */
        public Builder groups(KeyExchangeGroup... preferred) {
            this.groups = List.of(preferred);
            return this;
        }

        /** The listener's idle timeout; the config's default unless set. */
        /** Event loops; two unpinned ones unless a test says otherwise. */
        public Builder workers(WorkersConfig workers) {
            this.workers = workers;
            return this;
        }

        public Builder idleTimeout(Duration timeout) {
            this.idleTimeout = timeout;
            return this;
        }

        public Builder handshakeTimeout(Duration timeout) {
            this.handshakeTimeout = timeout;
            return this;
        }

        public Builder requestHeaderTimeout(Duration timeout) {
            this.requestHeaderTimeout = timeout;
            return this;
        }

        /** The listener's connection limit; the default derives from the descriptor limit. */
        public Builder maxConnections(int max) {
            this.maxConnections = max;
            return this;
        }

        public RunningProxy start() throws Exception {
            // On a machine that does not allow io_uring, a run meant for it is skipped, not failed, and says why.
            Assumptions.assumeTrue(workers.transport() != IoTransport.IO_URING || IoUring.isAvailable(),
                    () -> "io_uring is not available here: " + IoUring.unavailabilityCause());
            ServerTlsConfig tls = new ServerTlsConfig(pki.serverCertificatePem(), pki.serverKeyPem(), List.of(),
                    minVersion, sessionResumption, groups);
            ListenerConfig listener = new ListenerConfig("main", new HostPort("127.0.0.1", 0), tls, null,
                    idleTimeout, handshakeTimeout, maxConnections, requestHeaderTimeout);
            Map<String, BackendConfig> backends = new LinkedHashMap<>();
            backendUrls.forEach((name, url) -> backends.put(name, new BackendConfig(URI.create(url),
                    Duration.ofSeconds(2), responseTimeout, 8, Duration.ofSeconds(30))));
            backends.putAll(backendConfigs);
            Map<String, TrustAnchorConfig> anchors = new LinkedHashMap<>();
            anchors.put(TestPki.ANCHOR, new TrustAnchorConfig(pki.caPem()));
            anchors.putAll(extraAnchors);
            ProxyConfig config = new ProxyConfig(anchors, List.of(listener), identities, routes, backends,
                    new AccessLogConfig(true, "stdout"), null, null, revocation, null, null, workers);
            BlockingQueue<AccessLogEntry> entries = new LinkedBlockingQueue<>();
            AccessLog log = accessLogOverride != null ? accessLogOverride : entries::add;
            ProxyServer server = ProxyServer.start(config, log, new ProxyMetrics(registry), clock);
            return new RunningProxy(server, entries, registry);
        }
    }
}
