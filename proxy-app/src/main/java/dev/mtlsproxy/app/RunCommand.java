package dev.mtlsproxy.app;

import dev.mtlsproxy.app.admin.AdminEndpoints;
import dev.mtlsproxy.app.admin.AdminServer;
import dev.mtlsproxy.config.AccessLogConfig;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.log.AsyncJsonAccessLog;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.micrometer.core.instrument.Counter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import dev.mtlsproxy.core.proxy.CannotBindException;
import dev.mtlsproxy.core.proxy.ProxyServer;
import dev.mtlsproxy.core.proxy.UnusableSettingException;
import java.io.IOException;
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
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntConsumer;
import java.time.Clock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code mtls-proxy run}: loads, validates, starts; reloads on SIGHUP, file changes and {@code POST /admin/reload};
 * on SIGTERM or SIGINT drains gracefully and exits 0.
 */
final class RunCommand {

    private static final Logger log = LoggerFactory.getLogger(RunCommand.class);
    static final int ACCESS_LOG_QUEUE = 16_384;

    private final PrintStream out;
    private final PrintStream err;
    /** How the process ends after a signal-driven drain; null when running inside another program (tests). */
    private final IntConsumer exit;
    private final ConfigReloader.WatchServices watchServices;

    RunCommand(PrintStream out, PrintStream err) {
        this(out, err, null);
    }

    RunCommand(PrintStream out, PrintStream err, IntConsumer exit) {
        this(out, err, exit, ConfigReloader.WatchServices.DEFAULT);
    }

    /** As above, with the config file watched through {@code watchServices}: where a test makes the start fail. */
    RunCommand(PrintStream out, PrintStream err, IntConsumer exit, ConfigReloader.WatchServices watchServices) {
        this.out = out;
        this.err = err;
        this.exit = exit;
        this.watchServices = watchServices;
    }

    int run(Path file) {
        // First, before anything can fail: a log that shows a problem also shows which build had it.
        BuildInfo build = BuildInfo.current();
        log.info("event=starting version={} revision={} java={} config={}", build.version(), build.revision(),
                System.getProperty("java.runtime.version"), file);
        ProcessSignals signals = exit == null ? null : ProcessSignals.install(exit);
        // What does not depend on the configuration (native TLS and transport libraries, the metrics registry and
        // its JVM binders) is prepared on a second thread while the configuration is read and validated: about a
        // quarter of start-up on two cores (issue #8).
        FutureTask<PrometheusMeterRegistry> registry = new FutureTask<>(() -> {
            ProxyServer.loadNativeLibraries();
            return newRegistry();
        });
        Thread prepare = new Thread(registry, "startup-prepare");
        prepare.setDaemon(true);
        prepare.start();
        // Hashed before it is read, as a reload does: a write landing during start-up is then seen as a change.
        String configHash = ConfigReloader.Fingerprint.configHash(file);
        ProxyConfig config = ValidateCommand.load(file, err);
        if (config == null) {
            err.println("not starting: fix the problems above");
            return Command.INVALID;
        }
        for (String warning : ConfigLoader.warnings(config, Instant.now())) {
            log.warn("event=config_warning detail=\"{}\"", LogText.quoted(warning));
        }
        try {
            Running running = start(file, configHash, config, out, registry.get(), ConfigLoader::loadWithPositions,
                    watchServices);
            Runtime.getRuntime().addShutdownHook(new Thread(running::close, "shutdown-hook"));
            if (signals != null) {
                signals.started(running);
            }
            return Command.KEEP_RUNNING;
        } catch (CannotBindException | UnusableSettingException | PemException e) {
            // Expected failures, each with a message for the operator that names the setting or file (an address in
            // use, workers.cpuAffinity on this machine, a PEM replaced since it was validated): the class name and a
            // stack trace are noise.
            err.println("not starting: " + e.getMessage());
            return Command.INVALID;
        } catch (ExecutionException e) {
            return notForeseen(e.getCause());
        } catch (Exception e) {
            return notForeseen(e);
        }
    }

    /** A start failure nobody planned for: its stack trace is what a bug report needs, so it is logged with it. */
    private int notForeseen(Throwable e) {
        log.error("event=start_failed cause=\"{}\"", LogText.quoted(e.toString()), e);
        err.println("not starting: " + e + " (the stack trace is logged as event=start_failed)");
        return Command.INVALID;
    }

    /**
     * Starts the proxy with its access log and admin listener; shared with {@code demo}. The file as it is now is
     * taken for what {@code config} was loaded from.
     */
    static Running start(Path file, ProxyConfig config, PrintStream stdout) throws Exception {
        return start(file, ConfigReloader.Fingerprint.configHash(file), config, stdout);
    }

    /** As above, with the hash the config file had when {@code config} was loaded from it. */
    static Running start(Path file, String configHash, ProxyConfig config, PrintStream stdout) throws Exception {
        return start(file, configHash, config, stdout, newRegistry(), ConfigLoader::loadWithPositions,
                ConfigReloader.WatchServices.DEFAULT);
    }

    /** As above, with reloads reading the file through {@code loader}: where a test makes a reload step fail. */
    static Running start(Path file, ProxyConfig config, PrintStream stdout, ConfigReloader.Loader loader)
            throws Exception {
        return start(file, config, stdout, loader, ConfigReloader.WatchServices.DEFAULT);
    }

    /** As above, with the file watched through {@code watchServices}: where a test makes the watch fail. */
    static Running start(Path file, ProxyConfig config, PrintStream stdout, ConfigReloader.Loader loader,
            ConfigReloader.WatchServices watchServices) throws Exception {
        return start(file, ConfigReloader.Fingerprint.configHash(file), config, stdout, newRegistry(), loader,
                watchServices);
    }

    private static Running start(Path file, String configHash, ProxyConfig config, PrintStream stdout,
            PrometheusMeterRegistry registry, ConfigReloader.Loader loader, ConfigReloader.WatchServices watchServices)
            throws Exception {
        // Before the server reads the certificates and keys: one rotated meanwhile is then a change to load.
        ConfigReloader.Fingerprint loaded = ConfigReloader.Fingerprint.of(file, configHash, config);
        AsyncJsonAccessLog accessLog = openAccessLog(config.accessLog(), stdout);
        JvmGcMetrics gcMetrics = new JvmGcMetrics();
        gcMetrics.bindTo(registry);
        ProxyMetrics metrics = new ProxyMetrics(registry);
        metrics.buildInfo(BuildInfo.current().version(), BuildInfo.current().revision());
        if (accessLog != null) {
            metrics.accessLogDropped(accessLog, AsyncJsonAccessLog::dropped);
        }
        AtomicBoolean ready = new AtomicBoolean();
        ProxyServer server = null;
        AdminServer admin = null;
        ConfigReloader reloader = null;
        try {
            server = ProxyServer.start(config, accessLog == null ? AccessLog.DISABLED : accessLog,
                    metrics, Clock.systemUTC());
            server.bindEventLoopMetrics(registry);
            reloader = new ConfigReloader(file, loaded, server, metrics, loader, watchServices);
            ProxyServer started = server;
            // The admin listener's refusals join the listeners' in connections_refused_total, under listener="admin";
            // its request timeouts and evictions have counters of their own (the mTLS listeners do neither).
            Counter adminRefused = metrics.connectionsRefused("admin");
            Counter adminTimeouts = metrics.adminRequestTimeouts();
            Counter adminEvicted = metrics.adminConnectionsEvicted();
            admin = AdminServer.start(config.admin().address(), new AdminEndpoints(registry, ready::get,
                    reloader::snapshot, started::tlsInventory, reloader, Clock.systemUTC()),
                    new AdminServer.Counters(adminRefused::increment, adminTimeouts::increment,
                            adminEvicted::increment));
            log.info("event=admin_listening address={}", admin.address());
            if (config.reload().watch()) {
                reloader.watch(config.reload().debounce());
            }
            ready.set(true);
            return new Running(server, admin, accessLog, ready, gcMetrics, reloader, new AtomicBoolean(),
                    new AtomicBoolean());
        } catch (Exception e) {
            gcMetrics.close();
            if (reloader != null) {
                reloader.close();
            }
            if (admin != null) {
                admin.close();
            }
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
        // The allocator every channel uses, since none is set on any bootstrap: Netty 4.2's adaptive one unless
        // -Dio.netty.allocator.type picks another. Metrics of any other instance stay at zero however much is held.
        if (ByteBufAllocator.DEFAULT instanceof ByteBufAllocatorMetricProvider allocator) {
            new NettyAllocatorMetrics(allocator).bindTo(registry);
        }
        return registry;
    }

    private static AsyncJsonAccessLog openAccessLog(AccessLogConfig config, PrintStream stdout) throws IOException {
        if (!config.enabled()) {
            return null;
        }
        return config.path().equals("stdout") ? new AsyncJsonAccessLog(stdout, ACCESS_LOG_QUEUE)
                : AsyncJsonAccessLog.toFile(Path.of(config.path()), ACCESS_LOG_QUEUE);
    }

    /** A started proxy and what must be closed with it. */
    record Running(ProxyServer server, AdminServer admin, AsyncJsonAccessLog accessLog, AtomicBoolean ready,
            JvmGcMetrics gcMetrics, ConfigReloader reloader, AtomicBoolean stopping, AtomicBoolean closed)
            implements AutoCloseable {

        /** Claims the one shutdown; false when one already started (a second SIGTERM changes nothing). */
        boolean beginShutdown() {
            return stopping.compareAndSet(false, true);
        }

        /**
         * The graceful path: readiness 503 at once, keep accepting for drainDelay (load balancers deregister),
         * stop accepting, let requests in flight finish up to drainTimeout, close idle keep-alives, then close.
         */
        void shutdownGracefully() {
            var shutdown = server.config().shutdown();
            log.info("event=shutdown_started drainDelay={} drainTimeout={}", Durations.format(shutdown.drainDelay()),
                    Durations.format(shutdown.drainTimeout()));
            ready.set(false);
            try {
                // A plain wait on the shutdown thread: nothing else is to be done until load balancers notice.
                TimeUnit.NANOSECONDS.sleep(shutdown.drainDelay().toNanos());
                reloader.close();
                server.stopAccepting();
                boolean drained = server.drain(shutdown.drainTimeout());
                log.info("event=shutdown_drained complete={}", drained);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            closeAll();
        }

        /** Immediate stop (shutdown hook, demo, tests); after a graceful shutdown it only finishes closing. */
        @Override
        public void close() {
            stopping.set(true);
            closeAll();
        }

        private synchronized void closeAll() {
            if (closed.get()) {
                return;
            }
            closed.set(true);
            log.info("event=stopping");
            ready.set(false);
            reloader.close();
            server.close();
            admin.close();
            gcMetrics.close();
            if (accessLog != null) {
                accessLog.close();
            }
        }
    }
}
