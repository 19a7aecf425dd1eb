package dev.mtlsproxy.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Turns the lines collected by run.sh ({@code info KEY VALUE...} and {@code result key=value ...}) into Markdown:
 * the median of each metric over the rounds, its ratio of ours to each other server that ran (nginx, HAProxy, and
 * the baseline build of ours when there is one), then every round.
 */
final class Report {

    static final String OURS = "ours";
    /** Another build of our proxy (run.sh's BASELINE_JAR), measured alongside ours for an A/B comparison. */
    static final String OURS_BASE = "ours-base";
    static final String NGINX = "nginx";
    static final String HAPROXY = "haproxy";
    static final String BACKEND = "backend";

    /** The summary's columns, in this order when they ran; any other target follows in the order it first appears. */
    private static final List<String> COLUMN_ORDER = List.of(OURS, OURS_BASE, NGINX, HAPROXY);
    private static final Map<String, String> TITLES = Map.of(NGINX, "nginx", HAPROXY, "HAProxy");

    /** One row of the summary: a field of one scenario's results, how to show it, and which way is better. */
    private record Metric(String scenario, String field, String label, double scale, int decimals, String better) {
    }

    private static final List<Metric> METRICS = List.of(
            new Metric("keepalive", "rate", "keep-alive: requests/s", 1, 0, "higher"),
            new Metric("keepalive", "p50_us", "keep-alive: latency p50 (ms)", 1e-3, 2, "lower"),
            new Metric("keepalive", "p99_us", "keep-alive: latency p99 (ms)", 1e-3, 2, "lower"),
            new Metric("keepalive", "cpu_us_per_op", "keep-alive: proxy CPU per request (µs)", 1, 1, "lower"),
            new Metric("keepalive", "cpu_cores", "keep-alive: proxy CPU used (cores)", 1e-0, 2, "-"),
            new Metric("handshake", "rate", "handshake: new connections/s (full handshake + 1 request)", 1, 0,
                    "higher"),
            new Metric("handshake", "p50_us", "handshake: connect-to-response p50 (ms)", 1e-3, 2, "lower"),
            new Metric("handshake", "p99_us", "handshake: connect-to-response p99 (ms)", 1e-3, 2, "lower"),
            new Metric("handshake", "cpu_us_per_op", "handshake: proxy CPU per connection (µs)", 1, 0, "lower"),
            new Metric("handshake", "cpu_cores", "handshake: proxy CPU used (cores)", 1, 2, "-"),
            new Metric("handshake", "resumed_pct", "handshake: connections resumed (%, must be 0)", 1, 0, "-"),
            new Metric("resume", "rate", "resumption on: new connections/s (resumed handshake + 1 request)", 1, 0,
                    "higher"),
            new Metric("resume", "resumed_pct", "resumption on: connections that resumed a session (%)", 1, 0,
                    "higher"),
            new Metric("resume", "p99_us", "resumption on: connect-to-response p99 (ms)", 1e-3, 2, "lower"),
            new Metric("resume", "cpu_us_per_op", "resumption on: proxy CPU per connection (µs)", 1, 0, "lower"),
            new Metric("untrusted", "rate", "untrusted CA: refused connections/s", 1, 0, "higher"),
            new Metric("untrusted", "cpu_us_per_op", "untrusted CA: proxy CPU per refusal (µs)", 1, 0, "lower"),
            new Metric("flood", "rate", "untrusted flood: allowed keep-alive requests/s during it (1/8 of the connections)",
                    1, 0, "higher"),
            new Metric("flood", "p99_us", "untrusted flood: allowed latency p99 during it (ms)", 1e-3, 2, "lower"),
            new Metric("flood", "background_refused_rate", "untrusted flood: refusals/s meanwhile", 1, 0, "higher"),
            new Metric("idle", "pss_before_kib", "idle: memory before (MiB, PSS)", 1 / 1024.0, 1, "lower"),
            new Metric("idle", "pss_after_kib", "idle: memory holding the idle connections (MiB, PSS)", 1 / 1024.0, 1,
                    "lower"),
            new Metric("idle", "pss_kib_per_conn", "idle: memory per idle connection (KiB)", 1, 1, "lower"),
            new Metric("startup", "ms", "start-up: process start to first 200 (ms)", 1, 0, "lower"));

    private Report() {
    }

    static String render(Path file) throws IOException {
        List<String> info = new ArrayList<>();
        List<Map<String, String>> results = new ArrayList<>();
        List<Map<String, String>> warmups = new ArrayList<>();
        for (String line : Files.readAllLines(file)) {
            if (line.startsWith("info ")) {
                info.add(line.substring(5));
            } else if (line.startsWith("result ")) {
                results.add(fields(line));
            } else if (line.startsWith("warmup ")) {
                warmups.add(fields(line));
            }
        }
        StringBuilder out = new StringBuilder();
        if (!info.isEmpty()) {
            out.append("Machine and versions:\n\n");
            for (String line : info) {
                int space = line.indexOf(' ');
                out.append("- ").append(space < 0 ? line : line.substring(0, space) + ": " + line.substring(space + 1))
                        .append('\n');
            }
            out.append('\n');
        }
        summary(out, results);
        backend(out, results);
        rounds(out, results);
        warmups(out, warmups);
        return out.toString();
    }

    private static Map<String, String> fields(String line) {
        Map<String, String> fields = new LinkedHashMap<>();
        for (String pair : line.substring(line.indexOf(' ') + 1).trim().split(" +")) {
            int eq = pair.indexOf('=');
            if (eq > 0) {
                fields.put(pair.substring(0, eq), pair.substring(eq + 1));
            }
        }
        return fields;
    }

    /** The warm-up windows, one row per server and path: how the cost per operation fell from a cold start. */
    private static void warmups(StringBuilder out, List<Map<String, String>> warmups) {
        if (warmups.isEmpty()) {
            return;
        }
        out.append("Warm-up, before anything above was measured: server CPU µs per operation in consecutive windows "
                + "(the client warms up at the same time):\n\n");
        out.append("| target | path | windows (s each) | CPU µs/op, window by window | ops/s, first → last |\n");
        out.append("|---|---|---:|---|---|\n");
        Map<String, List<Map<String, String>>> rows = new LinkedHashMap<>();
        for (Map<String, String> w : warmups) {
            rows.computeIfAbsent(w.get("target") + " | " + w.get("scenario"), k -> new ArrayList<>()).add(w);
        }
        rows.forEach((key, windows) -> {
            StringBuilder cpu = new StringBuilder();
            for (Map<String, String> w : windows) {
                cpu.append(cpu.length() == 0 ? "" : ", ").append(num(w, "cpu_us_per_op", 1, 0));
            }
            out.append("| ").append(key).append(" | ").append(windows.size()).append(" × ")
                    .append(num(windows.get(0), "seconds", 1, 0)).append(" | ").append(cpu).append(" | ")
                    .append(num(windows.get(0), "rate", 1, 0)).append(" → ")
                    .append(num(windows.get(windows.size() - 1), "rate", 1, 0)).append(" |\n");
        });
        out.append('\n');
    }

    /**
     * One column per server that ran, then the ratio of ours to each of the others. A run of all three servers gives
     * the same table as before the baseline existed; a run of a subset (TARGETS) leaves out the columns of servers
     * that did not run, rather than filling them with n/a.
     */
    private static void summary(StringBuilder out, List<Map<String, String>> results) {
        List<String> targets = targets(results);
        List<String> others = targets.contains(OURS) ? targets.subList(1, targets.size()) : List.of();
        out.append("Medians over the rounds. Ratio = ours ÷ theirs; \"better\" says which direction is good.");
        if (targets.contains(OURS_BASE)) {
            out.append(" ours-base is another build of our proxy (its jar and commit are listed above), with the same "
                    + "configuration, ports of its own, and its rounds interleaved with the others: ours ÷ ours-base "
                    + "is the change from that build to this one.");
        }
        out.append("\n\n| metric |");
        StringBuilder rule = new StringBuilder("|---|");
        for (String target : targets) {
            out.append(' ').append(title(target)).append(" |");
            rule.append("---:|");
        }
        for (String other : others) {
            out.append(" ours ÷ ").append(title(other)).append(" |");
            rule.append("---:|");
        }
        out.append(" better |\n").append(rule).append("---|\n");
        for (Metric m : METRICS) {
            Map<String, Double> medians = new LinkedHashMap<>();
            for (String target : targets) {
                medians.put(target, median(results, m.scenario(), target, m.field()));
            }
            if (medians.values().stream().allMatch(v -> v == null)) {
                continue;
            }
            out.append("| ").append(m.label());
            for (String target : targets) {
                out.append(" | ").append(show(medians.get(target), m));
            }
            for (String other : others) {
                out.append(" | ").append(ratio(medians.get(OURS), medians.get(other)));
            }
            out.append(" | ").append(m.better()).append(" |\n");
        }
        for (String field : List.of("non200", "errors", "accepted")) {
            // An untrusted client's 400 from nginx is a refusal, not a failed request: non200 counts the others.
            List<String> scenarios = field.equals("non200") ? List.of("keepalive", "handshake", "resume", "flood")
                    : List.of("keepalive", "handshake", "resume", "untrusted", "flood");
            String label = switch (field) {
                case "non200" -> "non-200 responses to the allowed client, all rounds (must be 0)";
                case "errors" -> "connection errors, all rounds (must be 0)";
                default -> "untrusted clients that got an HTTP response, all rounds (must be 0)";
            };
            out.append("| ").append(label);
            for (String target : targets) {
                out.append(" | ").append(sum(results, scenarios, target, field));
            }
            // the value's closing bar, then the empty ratio and "better" cells
            out.append(" |".repeat(others.size() + 2)).append('\n');
        }
        out.append('\n');
    }

    /** The servers measured (never the backend), ours first and the baseline build of ours next to it. */
    static List<String> targets(List<Map<String, String>> results) {
        List<String> seen = new ArrayList<>();
        for (Map<String, String> r : results) {
            String target = r.get("target");
            if (target != null && !target.equals(BACKEND) && !seen.contains(target)) {
                seen.add(target);
            }
        }
        List<String> ordered = new ArrayList<>();
        for (String target : COLUMN_ORDER) {
            if (seen.contains(target)) {
                ordered.add(target);
            }
        }
        for (String target : seen) {
            if (!ordered.contains(target)) {
                ordered.add(target);
            }
        }
        return ordered;
    }

    private static String title(String target) {
        return TITLES.getOrDefault(target, target);
    }

    private static void backend(StringBuilder out, List<Map<String, String>> results) {
        Double rate = median(results, "keepalive", BACKEND, "rate");
        if (rate == null) {
            return;
        }
        out.append(String.format(Locale.ROOT,
                "The backend alone (plaintext keep-alive, same client and connection count; the ceiling): "
                        + "%.0f requests/s, p50 %.2f ms, p99 %.2f ms, backend CPU %.1f µs per request.%n%n",
                rate, median(results, "keepalive", BACKEND, "p50_us") / 1e3,
                median(results, "keepalive", BACKEND, "p99_us") / 1e3,
                median(results, "keepalive", BACKEND, "cpu_us_per_op")));
    }

    private static void rounds(StringBuilder out, List<Map<String, String>> results) {
        out.append("Every round (the medians above are taken over these):\n\n");
        out.append("| scenario | target | round | ops/s | p50 ms | p99 ms | max ms | proxy CPU µs/op | proxy cores "
                + "| backend CPU µs/op | client CPU µs/op | machine busy % | other load (cores) | non-200 | errors | resumed % "
                + "| TLS |\n");
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (Map<String, String> r : results) {
            String scenario = r.getOrDefault("scenario", "?");
            if (scenario.equals("idle") || scenario.equals("startup")) {
                continue;
            }
            out.append("| ").append(scenario).append(" | ").append(r.getOrDefault("target", "?"))
                    .append(" | ").append(r.getOrDefault("round", "?"))
                    .append(" | ").append(num(r, "rate", 1, 0))
                    .append(" | ").append(num(r, "p50_us", 1e-3, 2))
                    .append(" | ").append(num(r, "p99_us", 1e-3, 2))
                    .append(" | ").append(num(r, "max_us", 1e-3, 1))
                    .append(" | ").append(num(r, "cpu_us_per_op", 1, 1))
                    .append(" | ").append(num(r, "cpu_cores", 1, 2))
                    .append(" | ").append(num(r, "backend_cpu_us_per_op", 1, 1))
                    .append(" | ").append(num(r, "client_cpu_us_per_op", 1, 1))
                    .append(" | ").append(num(r, "machine_busy_pct", 1, 0))
                    .append(" | ").append(num(r, "other_cpu_cores", 1, 2))
                    // An untrusted client's 400 from nginx is its way of refusing, not a failed request.
                    .append(" | ").append(scenario.equals("untrusted") ? "-" : r.getOrDefault("non200", ""))
                    .append(" | ").append(r.getOrDefault("errors", ""))
                    .append(" | ").append(num(r, "resumed_pct", 1, 0))
                    .append(" | ").append(r.getOrDefault("session", "")).append(" |\n");
        }
        out.append('\n');
        boolean header = false;
        for (Map<String, String> r : results) {
            if (!"idle".equals(r.get("scenario")) && !"startup".equals(r.get("scenario"))) {
                continue;
            }
            if (!header) {
                out.append("| scenario | target | round | start-up ms | connections held | MiB PSS before | MiB PSS after "
                        + "| KiB per connection | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
                header = true;
            }
            out.append("| ").append(r.get("scenario")).append(" | ").append(r.getOrDefault("target", "?"))
                    .append(" | ").append(r.getOrDefault("round", "?"))
                    .append(" | ").append(num(r, "ms", 1, 0))
                    .append(" | ").append(r.getOrDefault("opened", ""))
                    .append(" | ").append(num(r, "pss_before_kib", 1 / 1024.0, 1))
                    .append(" | ").append(num(r, "pss_after_kib", 1 / 1024.0, 1))
                    .append(" | ").append(num(r, "pss_kib_per_conn", 1, 1))
                    .append(" | ").append(r.getOrDefault("errors", "")).append(" |\n");
        }
        if (header) {
            out.append('\n');
        }
    }

    private static Double median(List<Map<String, String>> results, String scenario, String target, String field) {
        List<Double> values = new ArrayList<>();
        for (Map<String, String> r : results) {
            if (scenario.equals(r.get("scenario")) && target.equals(r.get("target"))) {
                Double v = parse(r.get(field));
                if (v != null) {
                    values.add(v);
                }
            }
        }
        if (values.isEmpty()) {
            return null;
        }
        values.sort(null);
        int n = values.size();
        return n % 2 == 1 ? values.get(n / 2) : (values.get(n / 2 - 1) + values.get(n / 2)) / 2;
    }

    private static long sum(List<Map<String, String>> results, List<String> scenarios, String target, String field) {
        long sum = 0;
        for (Map<String, String> r : results) {
            if (target.equals(r.get("target")) && scenarios.contains(r.get("scenario"))) {
                Double v = parse(r.get(field));
                sum += v == null ? 0 : v.longValue();
            }
        }
        return sum;
    }

    private static Double parse(String value) {
        if (value == null || value.isEmpty() || value.equals("nan")) {
            return null;
        }
        try {
            return Double.valueOf(value);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static String show(Double value, Metric m) {
        return value == null ? "n/a" : String.format(Locale.ROOT, "%." + m.decimals() + "f", value * m.scale());
    }

    private static String num(Map<String, String> r, String field, double scale, int decimals) {
        Double v = parse(r.get(field));
        return v == null ? "" : String.format(Locale.ROOT, "%." + decimals + "f", v * scale);
    }

    private static String ratio(Double ours, Double theirs) {
        return ours == null || theirs == null || theirs == 0 ? "n/a"
                : String.format(Locale.ROOT, "%.2f", ours / theirs);
    }
}
