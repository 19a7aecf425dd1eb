package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendConfig;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A configured upstream with its connection pool. One per backend per configuration generation.
 *
 * @param name     the backend's name in the config
 * @param address  the endpoint, resolved once when the configuration is built: never on an event loop
 * @param config   timeouts and pool limits
 * @param pool     idle keep-alive connections, per event loop
 * @param health   passive health: whether the last connection attempt succeeded
 */
public record Backend(String name, InetSocketAddress address, BackendConfig config, BackendPool pool,
        AtomicBoolean health) {

    public static Backend of(String name, BackendConfig config) {
        int port = config.url().getPort() > 0 ? config.url().getPort() : 80;
        return new Backend(name, new InetSocketAddress(config.url().getHost(), port), config,
                new BackendPool(config.maxIdleConnections()), new AtomicBoolean(true));
    }

    /** 1 or 0 for now: one endpoint per backend, healthy until a connection attempt fails. */
    public int healthyEndpoints() {
        return health.get() ? 1 : 0;
    }

    /** {@code host:port}, as logs show it. */
    public String endpoint() {
        return address.getHostString() + ":" + address.getPort();
    }

    public Duration connectTimeout() {
        return config.connectTimeout();
    }

    public Duration responseTimeout() {
        return config.responseTimeout();
    }
}
