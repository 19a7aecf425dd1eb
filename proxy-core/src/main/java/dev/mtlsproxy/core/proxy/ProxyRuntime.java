package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.policy.Policy;
import java.util.HashMap;
import java.util.Map;

/**
 * Everything a request needs that comes from one configuration generation: compiled policy and backends. Handlers
 * read the current runtime once per request, which is what lets a reload decide the next request on an existing
 * connection by the new policy.
 *
 * @param config    the configuration it was built from
 * @param policy    compiled routes and grants
 * @param backends  by name
 * @param accessLog where finished requests go
 */
record ProxyRuntime(ProxyConfig config, Policy policy, Map<String, Backend> backends, AccessLog accessLog) {

    static ProxyRuntime build(ProxyConfig config, AccessLog accessLog) {
        return build(config, accessLog, Map.of());
    }

    /**
     * Builds the runtime of a new generation. A backend whose configuration did not change is carried over with its
     * pool, so a policy or certificate reload does not drop warm backend connections.
     */
    static ProxyRuntime build(ProxyConfig config, AccessLog accessLog, Map<String, Backend> previous) {
        Map<String, Backend> backends = new HashMap<>();
        config.backends().forEach((name, bc) -> {
            Backend old = previous.get(name);
            backends.put(name, old != null && old.config().equals(bc) ? old : Backend.of(name, bc));
        });
        return new ProxyRuntime(config, Policy.compile(config), Map.copyOf(backends), accessLog);
    }

    Backend backend(String name) {
        Backend backend = backends.get(name);
        if (backend == null) {
            // Validation makes this unreachable; fail loudly rather than forward somewhere unexpected.
            throw new IllegalStateException("route names unknown backend " + name);
        }
        return backend;
    }
}
