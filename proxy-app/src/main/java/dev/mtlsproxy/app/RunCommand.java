package dev.mtlsproxy.app;

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
import java.nio.file.Path;
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
        for (String warning : ConfigLoader.warnings(config)) {
            log.warn("event=config_warning detail=\"{}\"", warning);
        }
        try {
            Running running = start(config, out);
            Runtime.getRuntime().addShutdownHook(new Thread(running::close, "shutdown"));
            return Command.KEEP_RUNNING;
        } catch (Exception e) {
            err.println("not starting: " + e);
            return Command.INVALID;
        }
    }

    /** Starts the proxy with its access log; shared with {@code demo}. */
    static Running start(ProxyConfig config, PrintStream stdout) throws Exception {
        AsyncJsonAccessLog accessLog = openAccessLog(config.accessLog(), stdout);
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        ProxyMetrics metrics = new ProxyMetrics(registry);
        if (accessLog != null) {
            metrics.accessLogDropped(accessLog, AsyncJsonAccessLog::dropped);
        }
        try {
            ProxyServer server = ProxyServer.start(config, accessLog == null ? AccessLog.DISABLED : accessLog,
                    metrics, Clock.systemUTC(), 0);
            return new Running(server, accessLog, registry);
        } catch (Exception e) {
            if (accessLog != null) {
                accessLog.close();
            }
            throw e;
        }
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
    record Running(ProxyServer server, AsyncJsonAccessLog accessLog, PrometheusMeterRegistry registry)
            implements AutoCloseable {
        @Override
        public void close() {
            log.info("event=stopping");
            server.close();
            if (accessLog != null) {
                accessLog.close();
            }
        }
    }
}
