package dev.mtlsproxy.app;

import dev.mtlsproxy.app.demo.DemoCheck;
import dev.mtlsproxy.app.demo.DemoPki;
import dev.mtlsproxy.app.demo.EchoBackend;
import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.proxy.CannotBindException;
import dev.mtlsproxy.core.proxy.UnusableSettingException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code mtls-proxy demo}: the newcomer's first run. Mints (once) a throwaway PKI into {@code demo/} beside the
 * config's folder, which is where {@code config/demo.yaml} expects it, starts the built-in echo backend on the
 * config's backend address and the proxy, and prints three curl commands to try.
 */
final class DemoCommand {

    private static final Logger log = LoggerFactory.getLogger(DemoCommand.class);

    private final PrintStream out;
    private final PrintStream err;

    DemoCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /** @param check make the three requests, print what happened, stop, and exit 0 only if all behaved */
    int run(Path configFile, boolean check) {
        try {
            Demo demo = start(configFile, out, err, file -> ValidateCommand.load(file, err), check);
            if (check) {
                try (demo) {
                    return check(demo, configFile);
                }
            }
            Runtime.getRuntime().addShutdownHook(new Thread(demo::close, "shutdown"));
            return Command.KEEP_RUNNING;
        } catch (CannotBindException e) {
            // The demo's addresses are fixed in its config, so a second demo (or anything on 8443) stops this one.
            err.println("demo failed: " + e.getMessage() + "; is a demo already running? For other ports, copy "
                    + configFile + " beside it and run demo --config with the copy");
            return Command.INVALID;
        } catch (InvalidConfigException | UnusableSettingException | PemException e) {
            // Expected, as for run: the message names the file or setting, and the problems were printed above it.
            err.println("demo failed: " + e.getMessage());
            return Command.INVALID;
        } catch (Exception e) {
            // As run's event=start_failed: where an unforeseen failure came from is what a bug report needs.
            log.error("event=start_failed cause=\"{}\"", LogText.quoted(e.toString()), e);
            err.println("demo failed: " + e + " (the stack trace is logged as event=start_failed)");
            return Command.INVALID;
        }
    }

    /** The demo's config did not validate; its problems are already on stderr. */
    static final class InvalidConfigException extends Exception {

        private static final long serialVersionUID = 1L;

        InvalidConfigException(Path configFile) {
            super("the demo config is invalid: " + configFile);
        }
    }

    private int check(Demo demo, Path configFile) throws Exception {
        DemoPki pki = DemoPki.ensure(pkiDirFor(configFile), Clock.systemUTC());
        InetSocketAddress address = demo.proxy().server().addresses().get(0);
        DemoCheck.Result result = DemoCheck.run(pki, address);
        result.lines().forEach(line -> out.println("check: " + line));
        out.println(result.passed() ? "check: passed" : "check: FAILED");
        out.flush();
        return result.passed() ? 0 : 1;
    }

    /** Starts everything and prints the instructions; the caller owns the result. */
    static Demo start(Path configFile, PrintStream out, PrintStream err) throws Exception {
        return start(configFile, out, err, file -> ValidateCommand.load(file, err));
    }

    /** As above, reading the config through {@code loader}: where a test writes the file just after it was read. */
    static Demo start(Path configFile, PrintStream out, PrintStream err, Function<Path, ProxyConfig> loader)
            throws Exception {
        return start(configFile, out, err, loader, false);
    }

    /** @param check the three requests are made by {@code --check}, not by the reader from another terminal */
    private static Demo start(Path configFile, PrintStream out, PrintStream err, Function<Path, ProxyConfig> loader,
            boolean check) throws Exception {
        Path pkiDir = pkiDirFor(configFile);
        DemoPki pki = DemoPki.ensure(pkiDir, Clock.systemUTC());
        // Hashed before it is read, as run does: a write landing during start-up is then a change the watch loads,
        // not the baseline of a configuration that never ran.
        String configHash = ConfigReloader.Fingerprint.configHash(configFile);
        ProxyConfig config = loader.apply(configFile);
        if (config == null) {
            throw new InvalidConfigException(configFile);
        }
        var backendEntry = config.backends().entrySet().iterator().next();
        BackendConfig backendConfig = backendEntry.getValue();
        URI url = backendConfig.endpointUrls().get(0);
        EchoBackend backend;
        try {
            backend = EchoBackend.start(url.getHost(), url.getPort());
        } catch (UncheckedIOException e) {
            throw new CannotBindException("backends." + backendEntry.getKey() + ".url", url.toString(),
                    e.getCause());
        }
        if (url.getPort() == 0) {
            // Port 0 means "any free port", as for listeners: point the proxy at the port the backend got.
            config = withBackendPort(config, backendEntry.getKey(), backend.port());
        }
        RunCommand.Running proxy;
        try {
            proxy = RunCommand.start(configFile, configHash, config, out);
        } catch (Exception e) {
            backend.close();
            throw e;
        }
        Demo demo = new Demo(backend, proxy);
        InetSocketAddress address = proxy.server().addresses().get(0);
        out.print(instructions(pki, pkiDir, created(pki), address.getPort(), proxy.admin().address().getPort(),
                check));
        out.flush();
        return demo;
    }

    private static ProxyConfig withBackendPort(ProxyConfig config, String name, int port) {
        Map<String, BackendConfig> backends = new HashMap<>(config.backends());
        BackendConfig b = backends.get(name);
        URI url = b.endpointUrls().get(0);
        backends.put(name, b.withEndpoints(List.of(URI.create("http://" + url.getHost() + ":" + port))));
        return config.withBackends(backends);
    }

    static Path pkiDirFor(Path configFile) {
        Path configDir = configFile.toAbsolutePath().normalize().getParent();
        return configDir.resolveSibling("demo");
    }

    private static String created(DemoPki pki) {
        return pki.created() ? "created" : "reused";
    }

    static String instructions(DemoPki pki, Path pkiDir, String how, int port, int adminPort, boolean check) {
        String url = "https://" + DemoCheck.HOST + ":" + port;
        String ca = display(pki.caCertificate());
        return """

                ==========================================================================================
                 mtls-proxy DEMO - throwaway CA and certificates, NOT FOR PRODUCTION
                ==========================================================================================
                 Certificates (%s): %s
                 Echo backend and proxy are running. %s

                 # allowed: spiffe://demo.local/orders may call /hello -> 200 with the echo of your identity
                 curl -i --cacert %s --cert %s --key %s %s/hello

                 # denied: a valid certificate whose identity has no grant -> 403
                 curl -i --cacert %s --cert %s --key %s %s/hello

                 # no client certificate -> the TLS handshake is refused, no HTTP response at all
                 curl -i --cacert %s %s/hello

                 Metrics: curl -s http://127.0.0.1:%d/metrics | grep mtls_proxy_
                 %s
                ==========================================================================================
                """.formatted(how, display(pkiDir),
                check ? "--check makes these three requests now, then stops:" : "Try, from another terminal:",
                ca, display(pki.allowedClientCertificate()), display(pki.allowedClientKey()), url,
                ca, display(pki.deniedClientCertificate()), display(pki.deniedClientKey()), url,
                ca, url, adminPort, check ? "" : "Stop with Ctrl-C.");
    }

    /** Paths as short as they can be, relative to where the user stands. */
    private static String display(Path path) {
        Path cwd = Path.of("").toAbsolutePath();
        Path absolute = path.toAbsolutePath().normalize();
        return absolute.startsWith(cwd) ? cwd.relativize(absolute).toString() : absolute.toString();
    }

    /** The running demo. */
    record Demo(EchoBackend backend, RunCommand.Running proxy) implements AutoCloseable {
        @Override
        public void close() {
            proxy.close();
            backend.close();
        }
    }
}
