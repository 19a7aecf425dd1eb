package dev.mtlsproxy.config;

/**
 * The admin listener: metrics, health and introspection, plain HTTP. It is never the public mTLS listener, and its
 * default binds loopback only; exposing it wider is an explicit choice.
 *
 * @param address where to bind; default {@code 127.0.0.1:9901}
 */
public record AdminConfig(HostPort address) {

    public AdminConfig {
        address = address == null ? new HostPort("127.0.0.1", 9901) : address;
    }

    public static final AdminConfig DEFAULT = new AdminConfig(null);
}
