package dev.mtlsproxy.app;

import java.io.PrintStream;
import java.security.Security;
import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * {@code mtls-proxy COMMAND [options]}. The only class that reads the process environment (arguments, stdout,
 * exit code); commands get everything else passed in.
 */
public final class Main {

    static final String USAGE = """
            usage: mtls-proxy COMMAND [options]

            commands:
              run --config FILE        run the proxy; refuses to start on an invalid config; reloads on
                                       SIGHUP, file changes and POST /admin/reload; SIGTERM drains, exit 0
              validate --config FILE   check a config; exit 0 when valid, 1 with every problem listed;
                                       warns about rules that can never match and unused identities
              explain --config FILE --cert CLIENT.pem [--sni HOST] METHOD URL
                                       the identity the certificate yields, the route, each rule in order
                                       and the decision
              test --config FILE       run the config's tests: section; exit 1 at the first wrong decision
              demo [--config FILE] [--check]
                                       throwaway CA, certificates, echo backend and proxy on localhost
                                       (default config/demo.yaml); NOT for production. --check makes the
                                       three demo requests itself, prints the outcome and exits (0 when all
                                       three behave)
              health [--admin ADDR]    exit 0 when the proxy's admin /readyz answers 200 (default 127.0.0.1:9901);
                                       for container health checks
              version                  the version and git commit of this build, and the Java runtime
                                       (also --version)
              help                     this text (also --help, -h), on stdout; a usage error prints it on
                                       stderr

            Each command takes only the options shown with it. --config FILE may also be written FILE, -c FILE
            or --config=FILE; --help (or -h) after any command prints this.

            exit codes:
              0  done: the config is valid, every test passed, the proxy is ready, a drain after SIGTERM ended
              1  the command ran and the answer is no: problems in the config, a failed test, a certificate or
                 file that cannot be used, not ready, the proxy could not start
              2  usage error, nothing was run: no command, an unknown command or option, an option the command
                 does not take, a missing or extra argument

            environment:
              MTLS_PROXY_LOG_FORMAT=json   application log as JSON lines on stderr (default: text)
            """;

    static final String LEAK_DETECTION = "io.netty.leakDetection.level";
    static final String NAME_CACHE_TTL = "networkaddress.cache.ttl";
    static final String NAME_CACHE_NEGATIVE_TTL = "networkaddress.cache.negative.ttl";
    static final String NETTY_JFR = "io.netty.jfr.enabled";

    private Main() {
    }

    public static void main(String[] args) {
        resolveNamesUncached();
        // Must happen before the first logger is created: logback reads it once.
        if ("json".equalsIgnoreCase(System.getenv("MTLS_PROXY_LOG_FORMAT"))
                && System.getProperty("logback.configurationFile") == null) {
            System.setProperty("logback.configurationFile", "logback-json.xml");
        }
        // Netty's leak detector is a test-time tool (the tests run it at paranoid); by default it samples buffer
        // allocations and records access traces, which costs CPU on every request in production. Off unless asked
        // for with -Dio.netty.leakDetection.level=...; set before Netty's first class reads it.
        if (System.getProperty(LEAK_DETECTION) == null) {
            System.setProperty(LEAK_DETECTION, "disabled");
        }
        // Netty registers its buffer allocator's Flight Recorder event types when the allocator first loads, which
        // loads JFR's own classes too: 30-50 ms of start-up for events JFR leaves disabled unless a recording asks.
        // Off unless asked for with -Dio.netty.jfr.enabled=true.
        if (System.getProperty(NETTY_JFR) == null) {
            System.setProperty(NETTY_JFR, "false");
        }
        int code = run(args, System.out, System.err, System::exit);
        if (code != Command.KEEP_RUNNING) {
            System.exit(code);
        }
    }

    /**
     * Backend names are resolved at load and at every reload, never on an event loop (README, "Backend addresses").
     * The JVM would otherwise answer a lookup from its own cache, 30 s for an address and 10 s for a failure, so a
     * reload right after a DNS change kept the old address or the failure. Security properties, which the JVM reads
     * once, at its first lookup: set before anything can look a name up, and over java.security's, whose
     * negative 10 s is not for a process that only resolves when told to.
     */
    static void resolveNamesUncached() {
        Security.setProperty(NAME_CACHE_TTL, "0");
        Security.setProperty(NAME_CACHE_NEGATIVE_TTL, "0");
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, out, err, null);
    }

    /** @param exit ends the process after a signal-driven shutdown; null inside tests (no signal handlers) */
    static int run(String[] args, PrintStream out, PrintStream err, IntConsumer exit) {
        if (args.length == 0) {
            // Nothing was asked for: a usage error like any other, so the usage goes where errors go.
            err.println("missing command");
            err.print(USAGE);
            return Command.USAGE;
        }
        if (args[0].equals("-h") || args[0].equals("--help") || args[0].equals("help")) {
            out.print(USAGE);
            return Command.OK;
        }
        String command = args[0].equals("--version") ? "version" : args[0];
        if (!Options.isCommand(command)) {
            err.println("unknown command: " + command);
            err.print(USAGE);
            return Command.USAGE;
        }
        try {
            Options options = Options.parse(command, Arrays.copyOfRange(args, 1, args.length));
            if (options.help()) {
                out.print(USAGE);
                return Command.OK;
            }
            return switch (command) {
                case "run" -> new RunCommand(out, err, exit).run(options.requireConfig());
                case "validate" -> new ValidateCommand(out, err).run(options.requireConfig());
                case "demo" -> new DemoCommand(out, err).run(options.configOr("config/demo.yaml"), options.check());
                case "health" -> HealthCommand.run(options.adminOr("127.0.0.1:9901"), out, err);
                case "explain" -> new ExplainCommand(out, err).run(options.requireConfig(), options.requireCert(),
                        options.sni(), options.requireArguments("METHOD URL", 2));
                case "test" -> new PolicyTestCommand(out, err).run(options.requireConfig());
                case "version" -> version(out);
                default -> throw new IllegalStateException("a command Options accepts but Main does not run: "
                        + command);
            };
        } catch (Options.UsageException e) {
            err.println(e.getMessage());
            err.print(USAGE);
            return Command.USAGE;
        }
    }

    /** The build first, on a line of its own; then the runtime, which a bug report about TLS needs as much. */
    private static int version(PrintStream out) {
        out.println(BuildInfo.current().line());
        out.println("Java " + System.getProperty("java.runtime.version") + " (" + System.getProperty("java.vendor")
                + "), " + System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        return Command.OK;
    }
}
