package dev.mtlsproxy.app;

import dev.mtlsproxy.app.admin.AdminEndpoints;
import dev.mtlsproxy.app.admin.AdminServer;
import dev.mtlsproxy.app.admin.CertificateInventory;
import dev.mtlsproxy.config.AccessLogConfig;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.log.AsyncJsonAccessLog;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import dev.mtlsproxy.core.proxy.ProxyServer;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.netty4.NettyAllocatorMetrics;
import io.micrometer.core.instrument.binder.system.FileDescriptorMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.netty.buffer.PooledByteBufAllocator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicBoolean;
import java.time.Clock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** {@code mtls-proxy run}: loads, validates, starts, and stops cleanly on SIGTERM/SIGINT. */
final class RunCommand {

    private static final Logger log = LoggerFactory.getLogger(RunCommand.class);
    static final int ACCESS_LOG_QUEUE = 16_384;

    private final PrintStream out;
    private final PrintStream err;

    RunCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    int run(Path file) {
        ProxyConfig config = ValidateCommand.load(file, err);
        if (config == null) {
            err.println("not starting: fix the problems above");
            return Command.INVALID;
        }
        for (String warning : ConfigLoader.warnings(config, java.time.Instant.now())) {
            log.warn("event=config_warning detail=\"{}\"", warning);
        }
        try {
            Running running = start(file, config, out);
            Runtime.getRuntime().addShutdownHook(new Thread(running::close, "shutdown"));
            return Command.KEEP_RUNNING;
        } catch (Exception e) {
            err.println("not starting: " + e);
            return Command.INVALID;
        }
    }

    /** Starts the proxy with its access log and admin listener; shared with {@code demo}. */
    static Running start(Path file, ProxyConfig config, PrintStream stdout) throws Exception {
        AsyncJsonAccessLog accessLog = openAccessLog(config.accessLog(), stdout);
        PrometheusMeterRegistry registry = newRegistry();
        JvmGcMetrics gcMetrics = new JvmGcMetrics();
        gcMetrics.bindTo(registry);
        ProxyMetrics metrics = new ProxyMetrics(registry);
        if (accessLog != null) {
            metrics.accessLogDropped(accessLog, AsyncJsonAccessLog::dropped);
        }
        AtomicBoolean ready = new AtomicBoolean();
        ProxyServer server = null;
        AdminServer admin = null;
        try {
            server = ProxyServer.start(config, accessLog == null ? AccessLog.DISABLED : accessLog,
                    metrics, Clock.systemUTC(), 0);
            server.bindEventLoopMetrics(registry);
            var snapshot = new AdminEndpoints.ConfigSnapshot(config, 1, sha256(file));
            admin = AdminServer.start(config.admin().address(), new AdminEndpoints(registry, ready::get, snapshot,
                    CertificateInventory.of(server), Clock.systemUTC()));
            log.info("event=admin_listening address={}", admin.address());
            ready.set(true);
            return new Running(server, admin, accessLog, ready, gcMetrics);
        } catch (Exception e) {
            gcMetrics.close();
            if (server != null) {
                server.close();
            }
            if (accessLog != null) {
                accessLog.close();
            }
            throw e;
        }
    }

    /**
     * The Prometheus registry with JVM, process and Netty metrics next to the proxy's own. Some stock binders break
     * Prometheus conventions that promtool checks (meters without help text, a "_count" gauge, "ns" in a name); the
     * filters mend or drop those so the page passes {@code promtool check metrics}. Filters must precede binding.
     */
    static PrometheusMeterRegistry newRegistry() {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        registry.config()
                .meterFilter(MeterFilter.deny(id -> id.getName().equals("process.cpu.time")
                        || id.getName().equals("system.cpu.count")))
                .meterFilter(new MeterFilter() {
                    @Override
                    public Meter.Id map(Meter.Id id) {
                        return id.getDescription() != null ? id : new Meter.Id(id.getName(), Tags.of(id.getTags()),
                                id.getBaseUnit(), id.getName().replace('.', ' '), id.getType());
                    }
                });
        new ClassLoaderMetrics().bindTo(registry);
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
        new FileDescriptorMetrics().bindTo(registry);
        new NettyAllocatorMetrics(PooledByteBufAllocator.DEFAULT).bindTo(registry);
        return registry;
    }

    private static String sha256(Path file) throws IOException, NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    private static AsyncJsonAccessLog openAccessLog(AccessLogConfig config, PrintStream stdout) throws IOException {
        if (!config.enabled()) {
            return null;
        }
        OutputStream target = config.path().equals("stdout") ? stdout
                : new FileOutputStream(config.path(), true);
        return new AsyncJsonAccessLog(target, ACCESS_LOG_QUEUE);
    }

    /** A started proxy and what must be closed with it. */
    record Running(ProxyServer server, AdminServer admin, AsyncJsonAccessLog accessLog, AtomicBoolean ready,
            JvmGcMetrics gcMetrics) implements AutoCloseable {
        @Override
        public void close() {
            log.info("event=stopping");
            ready.set(false);
            server.close();
            admin.close();
            gcMetrics.close();
            if (accessLog != null) {
                accessLog.close();
            }
        }
    }
}
