package dev.mtlsproxy.config;

import java.util.List;
import java.util.Map;

/**
 * The whole configuration, as loaded from YAML and validated once by {@link ConfigLoader}. Every instance handed to
 * the runtime has passed validation: names referenced by routes exist, files were readable, keys match certificates.
 *
 * @param trustAnchors named CA bundles client certificates chain to (with their CRLs); identities are scoped to one
 * @param listeners  the mTLS listeners; at least one
 * @param identities named workload identities, referenced by routes
 * @param routes     ordered routes; matching picks the most specific, not the first
 * @param backends   named upstreams, referenced by routes
 * @param accessLog  where the per-request JSON lines go
 * @param admin      the admin listener (metrics, health); loopback by default
 * @param tests      policy tests run by {@code mtls-proxy test}; ignored by {@code run}
 * @param revocation the emergency deny-list for client certificates (CRLs belong to their trust anchor)
 * @param shutdown   graceful drain on SIGTERM
 * @param reload     automatic reload when a referenced file changes
 * @param workers    the event loop threads and their CPU affinity; read at start only
 */
public record ProxyConfig(
        Map<String, TrustAnchorConfig> trustAnchors,
        List<ListenerConfig> listeners,
        Map<String, IdentityConfig> identities,
        List<RouteConfig> routes,
        Map<String, BackendConfig> backends,
        AccessLogConfig accessLog,
        AdminConfig admin,
        List<PolicyTestConfig> tests,
        RevocationConfig revocation,
        ShutdownConfig shutdown,
        ReloadConfig reload,
        WorkersConfig workers) {

    public ProxyConfig {
        trustAnchors = trustAnchors == null ? Map.of() : Map.copyOf(trustAnchors);
        tests = tests == null ? List.of() : List.copyOf(tests);
        listeners = listeners == null ? List.of() : List.copyOf(listeners);
        identities = identities == null ? Map.of() : Map.copyOf(identities);
        routes = routes == null ? List.of() : List.copyOf(routes);
        backends = backends == null ? Map.of() : Map.copyOf(backends);
        accessLog = accessLog == null ? AccessLogConfig.DEFAULT : accessLog;
        admin = admin == null ? AdminConfig.DEFAULT : admin;
        revocation = revocation == null ? RevocationConfig.NONE : revocation;
        shutdown = shutdown == null ? ShutdownConfig.DEFAULT : shutdown;
        reload = reload == null ? ReloadConfig.DEFAULT : reload;
        workers = workers == null ? WorkersConfig.DEFAULT : workers;
    }

    /** Without deny-list, shutdown, reload and event loop settings: their defaults apply. */
    public ProxyConfig(Map<String, TrustAnchorConfig> trustAnchors, List<ListenerConfig> listeners,
            Map<String, IdentityConfig> identities, List<RouteConfig> routes, Map<String, BackendConfig> backends,
            AccessLogConfig accessLog, AdminConfig admin, List<PolicyTestConfig> tests) {
        this(trustAnchors, listeners, identities, routes, backends, accessLog, admin, tests, null, null, null, null);
    }

    public ProxyConfig withListeners(List<ListenerConfig> replaced) {
        return new ProxyConfig(trustAnchors, replaced, identities, routes, backends, accessLog, admin, tests,
                revocation, shutdown, reload, workers);
    }

    public ProxyConfig withBackends(Map<String, BackendConfig> replaced) {
        return new ProxyConfig(trustAnchors, listeners, identities, routes, replaced, accessLog, admin, tests,
                revocation, shutdown, reload, workers);
    }

    public ProxyConfig withAccessLog(AccessLogConfig replaced) {
        return new ProxyConfig(trustAnchors, listeners, identities, routes, backends, replaced, admin, tests,
                revocation, shutdown, reload, workers);
    }

    public ProxyConfig withTrustAnchors(Map<String, TrustAnchorConfig> replaced) {
        return new ProxyConfig(replaced, listeners, identities, routes, backends, accessLog, admin, tests,
                revocation, shutdown, reload, workers);
    }

    public ProxyConfig withIdentities(Map<String, IdentityConfig> replaced) {
        return new ProxyConfig(trustAnchors, listeners, replaced, routes, backends, accessLog, admin, tests,
                revocation, shutdown, reload, workers);
    }

    public ProxyConfig withRoutes(List<RouteConfig> replaced) {
        return new ProxyConfig(trustAnchors, listeners, identities, replaced, backends, accessLog, admin, tests,
                revocation, shutdown, reload, workers);
    }

    public ProxyConfig withRevocation(RevocationConfig replaced) {
        return new ProxyConfig(trustAnchors, listeners, identities, routes, backends, accessLog, admin, tests,
                replaced, shutdown, reload, workers);
    }
}
