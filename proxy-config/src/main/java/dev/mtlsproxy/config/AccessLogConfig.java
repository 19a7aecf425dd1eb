package dev.mtlsproxy.config;

/**
 * The per-request JSON access log.
 *
 * @param enabled whether to write it
 * @param path    {@code stdout}, or a file to append to
 */
public record AccessLogConfig(Boolean enabled, String path) {

    public static final AccessLogConfig DEFAULT = new AccessLogConfig(true, "stdout");

    public AccessLogConfig {
        enabled = enabled == null ? Boolean.TRUE : enabled;
        path = path == null ? "stdout" : path;
    }
}
