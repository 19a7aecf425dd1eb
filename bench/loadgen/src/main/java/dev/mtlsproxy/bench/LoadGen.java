package dev.mtlsproxy.bench;

import io.netty.handler.ssl.SslContext;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;

/**
 * Load client of bench/run.sh. One JVM runs the whole suite, so that its own JIT warm-up is paid once, before
 * anything is measured. Each run prints a line on stdout as soon as it ends (diagnostics go to stderr):
 * {@code warmup key=value ...} for the unmeasured warm-up, {@code result key=value ...} for a measurement.
 * <pre>
 *   java -jar loadgen.jar --target ours:18602:123 --target nginx:18603:456,457 --backend backend:18601:789 \
 *       --ca ca.pem --cert allowed.pem --key allowed.key --untrusted-cert u.pem --untrusted-key u.key \
 *       --resume-ports ours:18606,nginx:18607 --warm ours:30,nginx:5 --rounds 3 \
 *       --scenarios backend,keepalive,handshake,resume,untrusted,idle
 *   java -jar loadgen.jar report results.txt     # the Markdown tables from collected lines
 *   java -jar loadgen.jar engine                 # the TLS engine this client uses
 * </pre>
 * Timed runs warm up, then measure a window: requests, latency, and the CPU time that the server's processes, the
 * backend's and this client spent in it.
 */
public final class LoadGen {

    private LoadGen() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("report")) {
            System.out.print(Report.render(Path.of(args[1])));
            return;
        }
        if (args.length == 1 && args[0].equals("engine")) {
            System.out.println(ClientTls.engine());
            return;
        }
        Options options = Options.parse(args);
        SslContext allowed = ClientTls.create(options.ca(), options.cert(), options.key(), false);
        SslContext untrusted = ClientTls.create(options.ca(), options.untrustedCert(), options.untrustedKey(), false);
        // The allowed client again, keeping the sessions each server gives it: the "resume" scenario.
        SslContext resuming = ClientTls.create(options.ca(), options.cert(), options.key(), true);

        // Memory first, while the servers are fresh: a JVM's heap grows under load and is not given back at once,
        // so measured later its resident size would show the load that came before, not the idle connections.
        if (options.scenarios().contains("idle")) {
            for (Options.Target target : options.targets()) {
                print("result", "idle", target, 1, idle(options,
                        new Load.Run(Load.Mode.IDLE, target, allowed, 32, options.idleConnections())));
            }
        }

        // Warm-up, never measured: the servers (a JVM compiles its hot paths only under load) and this client.
        for (Options.Target target : options.targets()) {
            Duration budget = options.serverWarmup().getOrDefault(target.name(), Duration.ZERO);
            if (!budget.isZero()) {
                warmUp(options, target, budget, allowed, untrusted, resuming);
            }
        }

        for (String scenario : options.scenarios()) {
            if (scenario.equals("backend")) {
                // The ceiling: the same client, plaintext, straight to the backend.
                for (int round = 1; round <= options.rounds(); round++) {
                    print("result", "keepalive", options.backend(), round, timed(options,
                            new Load.Run(Load.Mode.KEEPALIVE, options.backend(), null, options.connections(), 0),
                            null, options.warmup(), options.duration()));
                }
                continue;
            }
            if (scenario.equals("idle")) {
                continue;
            }
            List<Options.Target> targets = options.targets();
            for (int round = 1; round <= options.rounds(); round++) {
                for (int i = 0; i < targets.size(); i++) {
                    // Rotated order (a Latin square): no server is always measured first, or always right after
                    // the same other one.
                    Options.Target target = targets.get((i + round - 1) % targets.size());
                    Load.Run run = switch (scenario) {
                        case "keepalive" -> new Load.Run(Load.Mode.KEEPALIVE, target, allowed,
                                options.connections(), 0);
                        case "handshake" -> new Load.Run(Load.Mode.HANDSHAKE, target, allowed,
                                options.concurrency(), 0);
                        // New connections as in "handshake", to the server's listener with resumption on, from a
                        // client that offers a session it was given there.
                        case "resume" -> new Load.Run(Load.Mode.HANDSHAKE,
                                target.at(options.resumePorts().get(target.name())), resuming, options.concurrency(), 0);
                        // A few allowed clients, measured while the untrusted flood below runs against the same
                        // server: does a flood of refused handshakes starve the workloads it is there to protect?
                        case "flood" -> new Load.Run(Load.Mode.KEEPALIVE, target, allowed,
                                Math.max(1, options.connections() / 8), 0);
                        default -> new Load.Run(Load.Mode.UNTRUSTED, target, untrusted, options.concurrency(), 0);
                    };
                    Load.Run background = scenario.equals("flood")
                            ? new Load.Run(Load.Mode.UNTRUSTED, target, untrusted, options.concurrency(), 0) : null;
                    Duration window = scenario.equals("untrusted") ? options.untrustedDuration() : options.duration();
                    print("result", scenario, target, round, timed(options, run, background, options.warmup(),
                            window));
                }
            }
        }
    }

    /**
     * Exercises each path in turn, in windows of a few seconds: requests on kept-alive connections (40% of the
     * budget), full handshakes (50%, or 40% and resumed ones 10% when the resume scenario is to run), refused
     * handshakes (10%). There is no early exit on "looks steady": a JVM's compiler works through its queue in steps,
     * so two similar windows in a row do not mean it is done. Every window is printed as a {@code warmup} line, since
     * how long a server takes to reach its steady state is a result too.
     */
    private static void warmUp(Options options, Options.Target target, Duration budget, SslContext allowed,
                               SslContext untrusted, SslContext resuming) {
        Duration window = budget.compareTo(Duration.ofSeconds(30)) >= 0 ? Duration.ofSeconds(5) : Duration.ofSeconds(2);
        Duration tenth = budget.dividedBy(10);
        boolean resume = options.scenarios().contains("resume");
        warmPath(options, new Load.Run(Load.Mode.KEEPALIVE, target, allowed, options.connections(), 0), "keepalive",
                window, tenth.multipliedBy(4));
        warmPath(options, new Load.Run(Load.Mode.HANDSHAKE, target, allowed, options.concurrency(), 0), "handshake",
                window, tenth.multipliedBy(resume ? 4 : 5));
        if (resume) {
            warmPath(options, new Load.Run(Load.Mode.HANDSHAKE, target.at(options.resumePorts().get(target.name())),
                    resuming, options.concurrency(), 0), "resume", window.compareTo(tenth) > 0 ? tenth : window, tenth);
        }
        warmPath(options, new Load.Run(Load.Mode.UNTRUSTED, target, untrusted, options.concurrency(), 0),
                "untrusted", window.compareTo(tenth) > 0 ? tenth : window, tenth);
    }

    private static void warmPath(Options options, Load.Run run, String scenario, Duration window, Duration share) {
        int windows = (int) Math.max(1, share.toMillis() / window.toMillis());
        for (int i = 1; i <= windows; i++) {
            print("warmup", scenario, run.target(), i, timed(options, run, null, Duration.ZERO, window));
        }
    }

    private static void print(String kind, String scenario, Options.Target target, int round,
                              Map<String, String> fields) {
        StringBuilder line = new StringBuilder(kind);
        line.append(" scenario=").append(scenario).append(" target=").append(target.name()).append(" round=")
                .append(round);
        fields.forEach((k, v) -> line.append(' ').append(k).append('=').append(v));
        System.out.println(line);
        System.out.flush();
    }

    /**
     * Runs {@code run} and measures it over {@code duration}, after {@code warmup}. A {@code background} run (or
     * null) goes on against the same server for the whole time; its refusals are reported as
     * {@code background_refused_rate}, and the proxy CPU then covers both.
     */
    private static Map<String, String> timed(Options options, Load.Run run, Load.Run background, Duration warmup,
            Duration duration) {
        Map<String, String> out = new LinkedHashMap<>();
        Options.Target target = run.target();
        try (Load load = new Load(options, run); Load flood = background == null ? null : new Load(options, background)) {
            if (flood != null) {
                flood.start();
            }
            load.start();
            sleep(warmup);
            Snapshot start = Snapshot.take(load, options, target);
            long floodStart = flood == null ? 0 : flood.refused.sum();
            load.latency.reset();
            sleep(duration);
            Snapshot end = Snapshot.take(load, options, target);
            Histogram latency = load.latency.getIntervalHistogram();
            load.stop();
            if (flood != null) {
                flood.stop();
                out.put("background_refused_rate", fmt((flood.refused.sum() - floodStart)
                        / ((end.nanos - start.nanos) / 1e9)));
                // untrusted clients that reached the backend: must stay 0, as in the untrusted scenario
                out.put("accepted", Long.toString(flood.accepted.sum()));
            }

            double seconds = (end.nanos - start.nanos) / 1e9;
            long responses = (end.ok - start.ok) + (end.non200 - start.non200);
            long ops = run.mode() == Load.Mode.UNTRUSTED ? end.refused - start.refused : responses;
            double tick = 1e6 / options.clockTicksPerSecond();
            out.put("seconds", fmt(seconds));
            out.put("ops", Long.toString(ops));
            out.put("rate", fmt(ops / seconds));
            out.put("ok", Long.toString(end.ok - start.ok));
            out.put("non200", Long.toString(end.non200 - start.non200));
            out.put("errors", Long.toString(end.errors - start.errors));
            if (run.mode() == Load.Mode.HANDSHAKE) {
                long handshakes = end.handshakes - start.handshakes;
                out.put("resumed_pct", handshakes == 0 ? "nan" : fmt(100.0 * (end.resumed - start.resumed) / handshakes));
            }
            if (run.mode() == Load.Mode.UNTRUSTED) {
                out.put("accepted", Long.toString(end.accepted - start.accepted));
                out.put("refused_over_http", Long.toString(end.refusedOverHttp - start.refusedOverHttp));
            }
            out.put("p50_us", Long.toString(latency.getValueAtPercentile(50)));
            out.put("p90_us", Long.toString(latency.getValueAtPercentile(90)));
            out.put("p95_us", Long.toString(latency.getValueAtPercentile(95)));
            out.put("p98_us", Long.toString(latency.getValueAtPercentile(98)));
            out.put("p99_us", Long.toString(latency.getValueAtPercentile(99)));
            out.put("p999_us", Long.toString(latency.getValueAtPercentile(99.9)));
            out.put("max_us", Long.toString(latency.getMaxValue()));
            long ticks = end.targetTicks - start.targetTicks;
            out.put("cpu_us_per_op", ops == 0 ? "nan" : fmt(ticks * tick / ops));
            out.put("cpu_cores", fmt(ticks * tick / 1e6 / seconds));
            long backendTicks = end.backendTicks - start.backendTicks;
            out.put("backend_cpu_us_per_op", ops == 0 ? "nan" : fmt(backendTicks * tick / ops));
            long selfTicks = end.selfTicks - start.selfTicks;
            out.put("client_cpu_us_per_op", ops == 0 ? "nan" : fmt(selfTicks * tick / ops));
            long busy = end.machineBusy - start.machineBusy;
            long total = end.machineTotal - start.machineTotal;
            out.put("machine_busy_pct", total == 0 ? "nan" : fmt(100.0 * busy / total));
            // CPU that neither the server, the backend nor this client used: other work on the machine, which
            // disturbs the run. (The backend's own run counts it once, as the target.)
            long accounted = ticks + (target.equals(options.backend()) ? 0 : backendTicks) + selfTicks;
            out.put("other_cpu_cores", fmt(Math.max(0, busy - accounted) * tick / 1e6 / seconds));
            out.put("session", load.session);
        }
        return out;
    }

    private static Map<String, String> idle(Options options, Load.Run run) {
        Map<String, String> out = new LinkedHashMap<>();
        long[] before = ProcStats.memoryKib(run.target().pids());
        try (Load load = new Load(options, run)) {
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            load.start();
            while (load.settled() < run.total() && System.nanoTime() < deadline) {
                sleep(Duration.ofMillis(50));
            }
            // Let the server finish whatever the last handshakes allocated before reading its memory.
            sleep(Duration.ofSeconds(2));
            int open = load.open.get();
            long[] after = ProcStats.memoryKib(run.target().pids());
            sleep(options.hold());
            int stillOpen = load.open.get();
            load.stop();
            out.put("opened", Integer.toString(open));
            out.put("still_open", Integer.toString(stillOpen));
            out.put("errors", Long.toString(load.errors.sum()));
            out.put("non200", Long.toString(load.non200.sum()));
            out.put("rss_before_kib", Long.toString(before[0]));
            out.put("rss_after_kib", Long.toString(after[0]));
            out.put("pss_before_kib", Long.toString(before[1]));
            out.put("pss_after_kib", Long.toString(after[1]));
            out.put("pss_kib_per_conn", open == 0 ? "nan" : fmt((after[1] - before[1]) / (double) open));
            out.put("session", load.session);
        }
        return out;
    }

    /** Counters, CPU and time at one instant. */
    private record Snapshot(long nanos, long ok, long non200, long errors, long refused, long refusedOverHttp,
                            long accepted, long handshakes, long resumed,
                            long targetTicks, long backendTicks, long selfTicks, long machineBusy, long machineTotal) {
        static Snapshot take(Load load, Options options, Options.Target target) {
            List<Integer> backendPids = options.backend() == null ? List.of() : options.backend().pids();
            long[] machine = ProcStats.machineTicks();
            return new Snapshot(System.nanoTime(), load.ok.sum(), load.non200.sum(), load.errors.sum(),
                    load.refused.sum(), load.refusedOverHttp.sum(), load.accepted.sum(), load.handshakes.sum(),
                    load.resumed.sum(), ProcStats.cpuTicks(target.pids()),
                    ProcStats.cpuTicks(backendPids), ProcStats.selfCpuTicks(), machine[0], machine[1]);
        }
    }

    private static void sleep(Duration duration) {
        long deadline = System.nanoTime() + duration.toNanos();
        for (long left = duration.toNanos(); left > 0; left = deadline - System.nanoTime()) {
            LockSupport.parkNanos(left);
        }
    }

    static String fmt(double value) {
        return String.format(Locale.ROOT, "%.1f", value);
    }
}
