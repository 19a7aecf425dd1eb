package dev.mtlsproxy.app;

import dev.mtlsproxy.config.HostPort;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The few command-line options there are: {@code --config FILE} (or the file alone), {@code --admin ADDR},
 * {@code --cert FILE}, {@code --sni HOST}, {@code --check} (demo), and plain arguments after them
 * ({@code explain}'s METHOD URL). Each command takes only its own: an option or argument it would ignore is a usage
 * error, so {@code validate good.yaml bad.yaml} cannot pass on the first file alone, nor {@code demo --admin ADDR}
 * look as if it moved the admin port.
 *
 * @param help {@code --help} or {@code -h} was given: print the usage and do nothing else
 */
record Options(Path config, String admin, Path cert, String sni, boolean check, List<String> arguments,
        boolean help) {

    static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    /** The options each command takes; a command that takes {@code --config} also takes the file alone. */
    private static final Map<String, Set<String>> ACCEPTED = Map.of(
            "run", Set.of("--config"),
            "validate", Set.of("--config"),
            "test", Set.of("--config"),
            "explain", Set.of("--config", "--cert", "--sni"),
            "demo", Set.of("--config", "--check"),
            "health", Set.of("--admin"),
            "version", Set.of());

    /** Plain arguments after the config file; only explain has any (METHOD URL). */
    private static final Map<String, Integer> ARGUMENTS = Map.of("explain", 2);

    static boolean isCommand(String name) {
        return ACCEPTED.containsKey(name);
    }

    /** The command words that take options ({@code help} is handled before any parsing). */
    static Set<String> commands() {
        return ACCEPTED.keySet();
    }

    static Options parse(String command, String[] args) throws UsageException {
        Set<String> accepted = ACCEPTED.get(command);
        int maxArguments = ARGUMENTS.getOrDefault(command, 0);
        Path config = null;
        String admin = null;
        Path cert = null;
        String sni = null;
        boolean check = false;
        List<String> arguments = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help") || a.equals("-h")) {
                return new Options(null, null, null, null, false, List.of(), true);
            }
            if (!a.startsWith("-")) {
                if (config == null && accepted.contains("--config")) {
                    config = Path.of(a);
                } else if (arguments.size() < maxArguments) {
                    arguments.add(a);
                } else {
                    throw new UsageException(command + ": unexpected argument: " + a);
                }
                continue;
            }
            // --name value, --name=value; -c is --config
            int equals = a.indexOf('=');
            String name = a.startsWith("--") && equals > 0 ? a.substring(0, equals) : a;
            name = name.equals("-c") ? "--config" : name;
            if (!accepted.contains(name)) {
                throw new UsageException(command + (isKnownOption(name) ? " does not take " : ": unknown option: ")
                        + name);
            }
            if (name.equals("--check")) {
                if (equals > 0) {
                    throw new UsageException("--check takes no value");
                }
                check = true;
                continue;
            }
            String value;
            if (a.startsWith("--") && equals > 0) {
                value = a.substring(equals + 1);
            } else if (i + 1 < args.length) {
                value = args[++i];
            } else {
                value = "";
            }
            if (value.isEmpty()) {
                throw new UsageException(name + " needs " + switch (name) {
                    case "--cert" -> "a PEM file";
                    case "--sni" -> "a host name";
                    case "--admin" -> "host:port";
                    default -> "a file";
                });
            }
            switch (name) {
                case "--cert" -> cert = Path.of(value);
                case "--sni" -> sni = value;
                case "--admin" -> admin = admin(value);
                default -> config = Path.of(value);
            }
        }
        return new Options(config, admin, cert, sni, check, List.copyOf(arguments), false);
    }

    private static boolean isKnownOption(String name) {
        return ACCEPTED.values().stream().anyMatch(options -> options.contains(name));
    }

    /** Checked here, so a typo is a usage error (exit 2), not a proxy that seems down (exit 1). */
    private static String admin(String value) throws UsageException {
        try {
            return HostPort.parse(value).toString();
        } catch (IllegalArgumentException e) {
            throw new UsageException("--admin: \"" + value + "\" (" + e.getMessage() + ")");
        }
    }

    Path requireConfig() throws UsageException {
        if (config == null) {
            throw new UsageException("missing --config FILE");
        }
        return config;
    }

    Path requireCert() throws UsageException {
        if (cert == null) {
            throw new UsageException("missing --cert CLIENT.pem");
        }
        return cert;
    }

    List<String> requireArguments(String what, int count) throws UsageException {
        if (arguments.size() != count) {
            throw new UsageException("expected " + what + ", got " + (arguments.isEmpty() ? "nothing"
                    : String.join(" ", arguments)));
        }
        return arguments;
    }

    String adminOr(String fallback) {
        return admin == null ? fallback : admin;
    }

    Path configOr(String fallback) {
        return config == null ? Path.of(fallback) : config;
    }
}
