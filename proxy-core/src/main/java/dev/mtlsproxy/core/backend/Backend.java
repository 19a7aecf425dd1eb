package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.core.tls.BackendTls;
import io.netty.channel.Channel;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ImmediateEventExecutor;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLException;

/**
 * A configured upstream: its endpoints, their pools and health, and the one TLS context they share. One per backend
 * per configuration generation; everything here is built when the configuration is, never per connection.
 */
public final class Backend {

    private final String name;
    private final BackendConfig config;
    private final BackendTls tls;
    private final List<Endpoint> endpoints;
    private final AtomicInteger next = new AtomicInteger();
    private final HealthChecker healthChecker;

    private Backend(String name, BackendConfig config, BackendTls tls, List<Endpoint> endpoints) {
        this.name = name;
        this.config = config;
        this.tls = tls;
        this.endpoints = List.copyOf(endpoints);
        this.healthChecker = config.healthCheck() == null ? null : new HealthChecker(this, config.healthCheck());
    }

    /** Resolves the endpoints' addresses and builds the TLS context: call off the event loops. */
    public static Backend build(String name, BackendConfig config) throws PemException, GeneralSecurityException,
            SSLException {
        return build(name, config, null);
    }

    /**
     * As {@link #build(String, BackendConfig)}, but returns {@code previous} itself when its configuration is the
     * same, its TLS files still hold the same certificates and key, and its endpoints' names still resolve to the
     * addresses it connects to, so that its pools and health carry over. A certificate rotated in place (same path,
     * new content) makes a new backend with the new material; so does a name that now resolves elsewhere, or that
     * did not resolve when {@code previous} was built.
     *
     * @param previous the running generation's backend of the same name, or null
     */
    public static Backend build(String name, BackendConfig config, Backend previous) throws PemException,
            GeneralSecurityException, SSLException {
        boolean sameConfig = previous != null && previous.config.equals(config);
        boolean same = sameConfig && previous.addressesStillResolve();
        BackendTls tls = null;
        boolean https = config.endpointUrls().stream().anyMatch(u -> "https".equalsIgnoreCase(u.getScheme()));
        if (https) {
            // Unchanged files keep their context even when the addresses moved: a new context says the files changed.
            tls = BackendTls.load(config.tls(), sameConfig ? previous.tls : null);
        }
        if (same && tls == previous.tls) {
            return previous;
        }
        List<Endpoint> endpoints = new ArrayList<>();
        for (URI url : config.endpointUrls()) {
            endpoints.add(new Endpoint(name, url, tls == null ? null : tls.context(), config.tls(),
                    config.connectTimeout(), config.coolDown(), config.maxIdleConnections(), config.idleTimeout(),
                    config.healthCheck(), previous == null ? null : previous.endpointAt(url)));
        }
        return new Backend(name, config, tls, endpoints);
    }

    /** This backend's endpoint for {@code url} (same scheme, host and port), or null. */
    private Endpoint endpointAt(URI url) {
        List<URI> urls = config.endpointUrls();
        for (int i = 0; i < urls.size(); i++) {
            URI candidate = urls.get(i);
            if (candidate.getScheme().equalsIgnoreCase(url.getScheme())
                    && candidate.getHost().equalsIgnoreCase(url.getHost())
                    && Endpoint.port(candidate) == Endpoint.port(url)) {
                return endpoints.get(i);
            }
        }
        return null;
    }

    /**
     * Each endpoint's address is still among those its name resolves to now (so a name with several addresses, in
     * whatever order its DNS server lists them, does not drop warm pools at every reload). Resolves: call off the
     * event loops.
     */
    private boolean addressesStillResolve() {
        List<URI> urls = config.endpointUrls();
        for (int i = 0; i < endpoints.size(); i++) {
            InetSocketAddress current = endpoints.get(i).address();
            if (current.isUnresolved()) {
                return false;
            }
            try {
                if (!Arrays.asList(InetAddress.getAllByName(Endpoint.bareHost(urls.get(i))))
                        .contains(current.getAddress())) {
                    return false;
                }
            } catch (UnknownHostException e) {
                // The name does not resolve now (a DNS outage, say): keep the address that worked until now.
            }
        }
        return true;
    }

    /** The endpoints' addresses as resolved when this backend was built, in configured order. */
    List<InetSocketAddress> addresses() {
        return endpoints.stream().map(Endpoint::address).toList();
    }

    public String name() {
        return name;
    }

    public BackendConfig config() {
        return config;
    }

    /** The TLS material and context of the https endpoints; null when every endpoint is plain http. */
    public BackendTls tls() {
        return tls;
    }

    public List<Endpoint> endpoints() {
        return endpoints;
    }

    /**
     * The next healthy endpoint in round-robin order that is not in {@code exclude} (the endpoints this request has
     * already tried). When every such endpoint is only cooling down after a failed connect, one of them anyway: a
     * passive verdict steers traffic between endpoints but never refuses it on its own, so a lone backend that
     * restarts for a second does not turn into a cool-down of 503s (nginx never marks a single server down; Envoy
     * routes to all hosts in panic). Null when none is left, or when the active health check failed them all.
     */
    public Endpoint pick(List<Endpoint> exclude) {
        int n = endpoints.size();
        int start = Math.floorMod(next.getAndIncrement(), n);
        Endpoint cooling = null;
        for (int i = 0; i < n; i++) {
            Endpoint candidate = endpoints.get((start + i) % n);
            if (exclude.contains(candidate) || !candidate.isActivelyHealthy()) {
                continue;
            }
            if (candidate.isHealthy()) {
                return candidate;
            }
            if (cooling == null) {
                cooling = candidate;
            }
        }
        return cooling;
    }

    public int healthyEndpoints() {
        int healthy = 0;
        for (Endpoint e : endpoints) {
            healthy += e.isHealthy() ? 1 : 0;
        }
        return healthy;
    }

    public int idleConnections() {
        int idle = 0;
        for (Endpoint e : endpoints) {
            idle += e.pool().idleConnections();
        }
        return idle;
    }

    public Duration responseTimeout() {
        return config.responseTimeout();
    }

    public Duration bodyIdleTimeout() {
        return config.bodyIdleTimeout();
    }

    void startHealthChecks(EventLoopGroup group, Class<? extends Channel> channelType) {
        if (healthChecker != null) {
            healthChecker.start(group.next(), channelType);
        }
    }

    /** Stops the health checks; the future completes once none of their results can be counted any more. */
    Future<Void> stopHealthChecks() {
        return healthChecker == null ? ImmediateEventExecutor.INSTANCE.newSucceededFuture(null)
                : healthChecker.stop();
    }

    /** Starts the health checks again after {@link #stopHealthChecks}, on the loop they ran on. */
    void resumeHealthChecks() {
        if (healthChecker != null) {
            healthChecker.resume();
        }
    }

    /**
     * Each endpoint reads the verdict of its counterpart in {@code previous} again (see
     * {@link Endpoint#takeOverHealth}). Call once {@code previous}'s checks have stopped and before this backend's
     * start.
     */
    void takeOverHealth(Backend previous) {
        List<URI> urls = config.endpointUrls();
        for (int i = 0; i < endpoints.size(); i++) {
            endpoints.get(i).takeOverHealth(previous.endpointAt(urls.get(i)));
        }
    }

    void close() {
        if (healthChecker != null) {
            healthChecker.stop();
        }
        for (Endpoint e : endpoints) {
            e.pool().closeAll();
        }
    }
}
