package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.PemException;
import io.netty.channel.Channel;
import io.netty.channel.EventLoopGroup;
import java.security.GeneralSecurityException;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every backend of one configuration generation. A generation's backends are built (off the event loops), then
 * started (health checks begin), and closed when the generation retires: health checks stop and idle pooled
 * connections close; connections in use finish their exchange and are closed instead of pooled.
 */
public final class Backends implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(Backends.class);

    private final Map<String, Backend> byName;
    private volatile boolean closed;

    private Backends(Map<String, Backend> byName) {
        this.byName = byName;
    }

    public static Backends build(Map<String, BackendConfig> configs) throws PemException, GeneralSecurityException,
            SSLException {
        return build(configs, null);
    }

    /**
     * Builds the backends of a new generation. A backend whose configuration and TLS files did not change is carried
     * over as it is, pools, health and all, so that a policy or listener certificate reload does not drop warm
     * backend connections; one whose certificate, key or CA bundle was rewritten in place is rebuilt with the new
     * material, and one whose names resolve elsewhere now with the new addresses (see
     * {@link Backend#build(String, BackendConfig, Backend)}).
     *
     * @param previous the current generation's backends, or null
     */
    public static Backends build(Map<String, BackendConfig> configs, Backends previous) throws PemException,
            GeneralSecurityException, SSLException {
        Map<String, Backend> built = new LinkedHashMap<>();
        for (Map.Entry<String, BackendConfig> e : configs.entrySet()) {
            Backend old = previous == null ? null : previous.get(e.getKey());
            Backend next = Backend.build(e.getKey(), e.getValue(), old);
            if (old != null && next != old && old.config().equals(e.getValue())) {
                if (next.addresses().equals(old.addresses())) {
                    log.info("event=backend_tls_reloaded backend={} reason=files_changed", e.getKey());
                } else {
                    log.info("event=backend_addresses_changed backend={} addresses={}", e.getKey(),
                            next.addresses());
                }
            }
            built.put(e.getKey(), next);
        }
        return new Backends(Map.copyOf(built));
    }

    /** Closes the backends of this (retiring) generation that {@code next} did not carry over. */
    public void retireInto(Backends next) {
        for (Backend b : byName.values()) {
            if (next.get(b.name()) != b) {
                b.close();
            }
        }
    }

    /** The backend of this name, or null. */
    public Backend get(String name) {
        return byName.get(name);
    }

    public Collection<Backend> values() {
        return byName.values();
    }

    /** Starts the active health checks, on one loop of {@code group} each; their I/O never blocks. */
    public void start(EventLoopGroup group, Class<? extends Channel> channelType) {
        for (Backend b : byName.values()) {
            b.startHealthChecks(group, channelType);
        }
    }

    /** Stops health checks and closes idle pooled connections; safe to call more than once, from any thread. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        byName.values().forEach(Backend::close);
    }
}
