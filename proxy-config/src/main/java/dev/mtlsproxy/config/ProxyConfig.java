package dev.mtlsproxy.config;

import java.util.List;
import java.util.Map;

/**
 * The whole configuration, as loaded from YAML and validated once by {@link ConfigLoader}. Every instance handed to
 * the runtime has passed validation: names referenced by routes exist, files were readable, keys match certificates.
 *
 * @param listeners  the mTLS listeners; at least one
 * @param identities named workload identities, referenced by routes
 * @param routes     ordered routes; matching picks the most specific, not the first
 * @param backends   named upstreams, referenced by routes
 * @param accessLog  where the per-request JSON lines go
 */
public record ProxyConfig(
        List<ListenerConfig> listeners,
        Map<String, IdentityConfig> identities,
        List<RouteConfig> routes,
        Map<String, BackendConfig> backends,
        AccessLogConfig accessLog) {

    public ProxyConfig {
        listeners = listeners == null ? List.of() : List.copyOf(listeners);
        identities = identities == null ? Map.of() : Map.copyOf(identities);
        routes = routes == null ? List.of() : List.copyOf(routes);
        backends = backends == null ? Map.of() : Map.copyOf(backends);
        accessLog = accessLog == null ? AccessLogConfig.DEFAULT : accessLog;
    }
}
