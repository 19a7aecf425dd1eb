package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.backend.Backends;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.policy.Policy;
import java.security.GeneralSecurityException;
import javax.net.ssl.SSLException;

/**
 * Everything a request needs that comes from one configuration generation: compiled policy and backends. Handlers
 * read the current runtime once per request, which is what lets a reload decide the next request on an existing
 * connection by the new policy.
 *
 * @param config    the configuration it was built from
 * @param policy    compiled routes and grants
 * @param backends  by name, with their pools, health and TLS contexts; closed when the generation retires
 * @param accessLog where finished requests go
 */
record ProxyRuntime(ProxyConfig config, Policy policy, Backends backends, AccessLog accessLog) {

    /** Builds everything off the event loops: backend addresses are resolved and TLS contexts made here. */
    static ProxyRuntime build(ProxyConfig config, AccessLog accessLog) throws PemException,
            GeneralSecurityException, SSLException {
        return build(config, accessLog, null);
    }

    /**
     * Builds the runtime of a new generation, off the event loops: backend addresses are resolved and TLS contexts
     * made here. Backends whose configuration did not change are carried over from {@code previous} (may be null).
     */
    static ProxyRuntime build(ProxyConfig config, AccessLog accessLog, Backends previous) throws PemException,
            GeneralSecurityException, SSLException {
        return new ProxyRuntime(config, Policy.compile(config), Backends.build(config.backends(), previous),
                accessLog);
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
