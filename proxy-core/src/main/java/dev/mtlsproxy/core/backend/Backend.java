package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendConfig;
import java.net.InetSocketAddress;
import java.time.Duration;

/**
 * A configured upstream with its connection pool. One per backend per configuration generation.
 *
 * @param name     the backend's name in the config
 * @param address  the endpoint, resolved once when the configuration is built: never on an event loop
 * @param config   timeouts and pool limits
 * @param pool     idle keep-alive connections, per event loop
 */
public record Backend(String name, InetSocketAddress address, BackendConfig config, BackendPool pool) {

    public static Backend of(String name, BackendConfig config) {
        int port = config.url().getPort() > 0 ? config.url().getPort() : 80;
        return new Backend(name, new InetSocketAddress(config.url().getHost(), port), config,
                new BackendPool(config.maxIdleConnections()));
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
