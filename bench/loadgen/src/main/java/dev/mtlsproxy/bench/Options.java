package dev.mtlsproxy.bench;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Command-line options of a suite: the servers, the scenarios, and their sizes. Every limit has a bound so that a
 * suite always ends by itself.
 */
record Options(
        String host,
        String serverName,
        String path,
        List<Target> targets,
        Target backend,
        List<String> scenarios,
        Map<String, Duration> serverWarmup,
        int rounds,
        Path ca,
        Path cert,
        Path key,
        Path untrustedCert,
        Path untrustedKey,
        Map<String, Integer> resumePorts,
        int connections,
        int concurrency,
        int idleConnections,
        int threads,
        Duration warmup,
        Duration duration,
        Duration untrustedDuration,
        Duration hold,
        int clockTicksPerSecond) {

    static final List<String> SCENARIOS = List.of("backend", "keepalive", "handshake", "resume", "untrusted", "flood",
            "idle");

    /** A server under test: a label, its port on the loopback address, and the processes whose CPU is its cost. */
    record Target(String name, int port, List<Integer> pids) {
        /** {@code NAME:PORT:PID[,PID...]}. */
        static Target parse(String option, String spec) {
            String[] parts = spec.split(":", 3);
            if (parts.length != 3 || parts[0].isBlank()) {
                throw new IllegalArgumentException(option + ": " + spec + " (expected: NAME:PORT:PID[,PID...])");
            }
            return new Target(parts[0], Integer.parseInt(parts[1]), ints(parts[2]));
        }

        /** The same server (same processes, same CPU accounting) on another of its ports. */
        Target at(int otherPort) {
            return new Target(name, otherPort, pids);
        }
    }

    /** Upper bounds: a typo never turns into an endless or host-exhausting run. */
    private static final Duration MAX_RUN = Duration.ofMinutes(2);
    private static final int MAX_ROUNDS = 10;
    private static final int MAX_CONNECTIONS = 10_000;

    static Options parse(String[] args) {
        Map<String, String> values = new LinkedHashMap<>();
        List<Target> targets = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (!name.startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value, got: " + name);
            }
            String value = args[++i];
            if (name.equals("--target")) {
                targets.add(Target.parse(name, value));
            } else if (values.put(name.substring(2), value) != null) {
                throw new IllegalArgumentException(name + " given twice");
            }
        }
        List<String> scenarios = List.of(values.getOrDefault("scenarios", String.join(",", SCENARIOS)).split(","));
        for (String scenario : scenarios) {
            if (!SCENARIOS.contains(scenario)) {
                throw new IllegalArgumentException("--scenarios: " + scenario + " (expected: some of " + SCENARIOS + ")");
            }
        }
        String backend = values.get("backend");
        Options options = new Options(
                values.getOrDefault("host", "127.0.0.1"),
                values.getOrDefault("server-name", "localhost"),
                values.getOrDefault("path", "/allowed"),
                List.copyOf(targets),
                backend == null ? null : Target.parse("--backend", backend),
                scenarios,
                perServer("--warm", values.getOrDefault("warm", ""), "SECONDS", Options::seconds),
                integer(values, "rounds", 3, 1, MAX_ROUNDS),
                Path.of(required(values, "ca")),
                Path.of(required(values, "cert")),
                Path.of(required(values, "key")),
                Path.of(required(values, "untrusted-cert")),
                Path.of(required(values, "untrusted-key")),
                perServer("--resume-ports", values.getOrDefault("resume-ports", ""), "PORT", Integer::parseInt),
                integer(values, "connections", 64, 1, 1_000),
                integer(values, "concurrency", 16, 1, 1_000),
                integer(values, "idle-connections", 2_000, 0, MAX_CONNECTIONS),
                integer(values, "threads", 2, 1, 64),
                seconds(values.getOrDefault("warmup", "3")),
                seconds(values.getOrDefault("duration", "10")),
                seconds(values.getOrDefault("untrusted-duration", "5")),
                seconds(values.getOrDefault("hold", "3")),
                integer(values, "clk-tck", 100, 1, 1_000_000));
        // Loopback only: this tool never sends load anywhere else.
        if (!options.host().startsWith("127.") && !options.host().equals("::1")) {
            throw new IllegalArgumentException("--host: " + options.host() + " (expected: a loopback address)");
        }
        if (targets.isEmpty()) {
            throw new IllegalArgumentException("--target NAME:PORT:PIDS is required, at least once");
        }
        for (Target target : targets) {
            if (scenarios.contains("resume") && !options.resumePorts().containsKey(target.name())) {
                throw new IllegalArgumentException("--resume-ports: no port for " + target.name()
                        + " (expected: NAME:PORT,... naming a listener of each target with session resumption on)");
            }
        }
        if (scenarios.contains("backend") && backend == null) {
            throw new IllegalArgumentException("--backend NAME:PORT:PIDS is required for the backend scenario");
        }
        List<Duration> durations = new ArrayList<>(options.serverWarmup().values());
        durations.addAll(List.of(options.warmup(), options.duration(), options.untrustedDuration(), options.hold()));
        for (Duration d : durations) {
            if (d.isNegative() || d.compareTo(MAX_RUN) > 0) {
                throw new IllegalArgumentException("a duration is out of range: " + d + " (expected: 0.." + MAX_RUN + ")");
            }
        }
        return options;
    }

    private static String required(Map<String, String> values, String name) {
        String value = values.get(name);
        if (value == null) {
            throw new IllegalArgumentException("--" + name + " is required");
        }
        return value;
    }

    private static int integer(Map<String, String> values, String name, int byDefault, int min, int max) {
        int value = Integer.parseInt(values.getOrDefault(name, Integer.toString(byDefault)));
        if (value < min || value > max) {
            throw new IllegalArgumentException("--" + name + ": " + value + " (expected: " + min + ".." + max + ")");
        }
        return value;
    }

    private static Duration seconds(String value) {
        return Duration.ofMillis(Math.round(Double.parseDouble(value) * 1000));
    }

    /**
     * {@code NAME:VALUE,...}, one value per server: {@code --warm NAME:SECONDS} (how long each server is loaded before
     * anything is measured), {@code --resume-ports NAME:PORT}.
     */
    private static <T> Map<String, T> perServer(String option, String spec, String valueName,
                                                Function<String, T> value) {
        Map<String, T> out = new LinkedHashMap<>();
        for (String part : spec.split(",")) {
            if (part.isBlank()) {
                continue;
            }
            String[] nameValue = part.split(":");
            if (nameValue.length != 2) {
                throw new IllegalArgumentException(option + ": " + part + " (expected: NAME:" + valueName + ")");
            }
            out.put(nameValue[0], value.apply(nameValue[1]));
        }
        return Map.copyOf(out);
    }

    private static List<Integer> ints(String csv) {
        List<Integer> out = new ArrayList<>();
        for (String part : csv.split(",")) {
            if (!part.isBlank()) {
                out.add(Integer.parseInt(part.trim()));
            }
        }
        return List.copyOf(out);
    }
}
