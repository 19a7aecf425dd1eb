package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The monitoring kit in deploy/ against the metrics the proxy exports: the alert rules and scrape configuration
 * pass promtool (syntax and the alerts' unit tests), and every metric the rules and the Grafana dashboard query is
 * one the proxy exports, so renaming a metric breaks the build instead of silently emptying a panel or muting an
 * alert. The fixed list below is itself checked against what {@link ProxyMetrics} exposes and what
 * docs/METRICS.md describes.
 */
class PrometheusRulesTest {

    private static final Path DEPLOY = Path.of("..", "deploy");
    private static final Path PROMETHEUS = DEPLOY.resolve("prometheus");
    private static final Path DASHBOARD = DEPLOY.resolve("grafana").resolve("mtls-proxy-dashboard.json");
    private static final Path METRICS_DOC = Path.of("..", "docs", "METRICS.md");

    // The proxy's metrics as Prometheus names them: docs/METRICS.md is the contract.
    static final List<String> COUNTERS = List.of(
            "mtls_proxy_tls_handshakes_total",
            "mtls_proxy_tls_key_exchanges_total",
            "mtls_proxy_connections_accepted_total",
            "mtls_proxy_connections_closed_total",
            "mtls_proxy_connections_refused_total",
            "mtls_proxy_admin_request_timeouts_total",
            "mtls_proxy_admin_connections_evicted_total",
            "mtls_proxy_requests_total",
            "mtls_proxy_request_body_bytes_total",
            "mtls_proxy_response_body_bytes_total",
            "mtls_proxy_authz_decisions_total",
            "mtls_proxy_backend_requests_total",
            "mtls_proxy_backend_connect_errors_total",
            "mtls_proxy_backend_retries_total",
            "mtls_proxy_backend_tunnel_cuts_total",
            "mtls_proxy_config_reloads_total",
            "mtls_proxy_config_reload_step_failures_total",
            "mtls_proxy_access_log_dropped_total",
            "mtls_proxy_handshake_log_suppressed_total",
            "mtls_proxy_crl_stale_accepted_total");
    static final List<String> GAUGES = List.of(
            "mtls_proxy_connections_open",
            "mtls_proxy_connections_limit",
            "mtls_proxy_requests_in_flight",
            "mtls_proxy_backend_pool_idle_connections",
            "mtls_proxy_backend_healthy_endpoints",
            "mtls_proxy_certificate_expiry_timestamp_seconds",
            "mtls_proxy_config_last_reload_success_timestamp_seconds",
            "mtls_proxy_config_generation",
            "mtls_proxy_crl_next_update_timestamp_seconds",
            "mtls_proxy_build_info");
    static final List<String> HISTOGRAMS = List.of(
            "mtls_proxy_tls_handshake_duration_seconds",
            "mtls_proxy_request_duration_seconds",
            "mtls_proxy_backend_response_seconds",
            "mtls_proxy_client_certificate_remaining_seconds");
    /** Series of a Micrometer histogram in Prometheus; the bare name has none. */
    private static final List<String> HISTOGRAM_SUFFIXES = List.of("_bucket", "_count", "_sum", "_max");
    /** Micrometer's JVM, process and Netty binders: their names are Micrometer's, not ours to pin. */
    private static final List<String> BINDER_PREFIXES = List.of("jvm_", "process_", "netty_");
    /** Series Prometheus itself writes for every target. */
    private static final Set<String> PROMETHEUS_SERIES = Set.of("up");

    static final Set<String> EXPORTED = Stream.concat(Stream.concat(COUNTERS.stream(), GAUGES.stream()),
                    HISTOGRAMS.stream().flatMap(h -> HISTOGRAM_SUFFIXES.stream().map(h::concat)))
            .collect(Collectors.toUnmodifiableSet());

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    @TempDir
    Path tmp;

    // ---- promtool ----------------------------------------------------------------------------------------------

    @Test
    void alertRulesPassPromtool() throws Exception {
        promtool(PROMETHEUS, "check", "rules", "alerts.yml");
    }

    @Test
    void alertsFireWhereTheirUnitTestsSay() throws Exception {
        promtool(PROMETHEUS, "test", "rules", "alerts_test.yml");
    }

    @Test
    void scrapeConfigurationPassesPromtool() throws Exception {
        // Offline: check config reads the file and its rule_files, it contacts no target.
        promtool(PROMETHEUS, "check", "config", "prometheus.yml");
    }

    @Test
    void everyDashboardQueryIsValidPromQl() throws Exception {
        // promtool has no offline query parser in Debian's 2.42, but it parses recording rules: one per query,
        // with Grafana's variables replaced by what Grafana would send.
        ArrayNode rules = JSON.createArrayNode();
        dashboardQueries().forEach((where, expr) -> rules.addObject()
                .put("record", "dashboard:" + where.replaceAll("[^a-zA-Z0-9_]", "_"))
                .put("expr", withGrafanaVariablesSubstituted(expr)));
        ObjectNode file = YAML.createObjectNode();
        file.putArray("groups").addObject().put("name", "dashboard").set("rules", rules);
        Path ruleFile = tmp.resolve("dashboard-queries.yml");
        YAML.writeValue(ruleFile.toFile(), file);

        promtool(tmp, "check", "rules", ruleFile.getFileName().toString());
    }

    // ---- metric names ------------------------------------------------------------------------------------------

    @Test
    void dashboardQueriesOnlyExportedMetrics() throws Exception {
        Map<String, String> queries = dashboardQueries();
        assertThat(queries).hasSizeGreaterThan(20);
        assertThat(unknownMetrics(queries)).isEmpty();
    }

    @Test
    void alertRulesQueryOnlyExportedMetrics() throws Exception {
        Map<String, String> queries = new LinkedHashMap<>();
        for (JsonNode rule : alertRules()) {
            queries.put(rule.path("alert").asText(), rule.path("expr").asText());
        }
        assertThat(queries).containsKeys("MtlsProxyCertificateExpiringSoon", "MtlsProxyHandshakeFailuresSpike",
                "MtlsProxyDenialsSpike", "MtlsProxyReloadFailed", "MtlsProxyBackendDown",
                "MtlsProxyAccessLogDropping");
        assertThat(unknownMetrics(queries)).isEmpty();
    }

    @Test
    void alertUnitTestsFeedOnlyExportedMetrics() throws Exception {
        // An alert test fed a misspelt series would pass while testing nothing.
        Map<String, String> series = new LinkedHashMap<>();
        for (JsonNode test : YAML.readTree(PROMETHEUS.resolve("alerts_test.yml").toFile()).path("tests")) {
            for (JsonNode input : test.path("input_series")) {
                String name = input.path("series").asText().replaceAll("\\{.*", "");
                series.put(test.path("name").asText() + ": " + name, name);
            }
        }
        assertThat(unknownMetrics(series)).isEmpty();
    }

    @Test
    void everyAlertHasASeverityASummaryAndADescription() throws Exception {
        for (JsonNode rule : alertRules()) {
            assertThat(rule.path("labels").path("severity").asText()).as(rule.path("alert").asText())
                    .isIn("critical", "warning", "info");
            assertThat(rule.path("annotations").path("summary").asText()).as(rule.path("alert").asText())
                    .isNotBlank();
            assertThat(rule.path("annotations").path("description").asText()).as(rule.path("alert").asText())
                    .isNotBlank();
        }
    }

    @Test
    void theFixedListIsWhatTheProxyExports() {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        touchEveryMeter(new ProxyMetrics(registry));

        Set<String> exposed = registry.scrape().lines()
                .filter(line -> !line.startsWith("#") && !line.isBlank())
                .map(line -> line.replaceAll("[{ ].*", ""))
                .collect(Collectors.toCollection(TreeSet::new));
        assertThat(exposed).containsExactlyInAnyOrderElementsOf(new TreeSet<>(EXPORTED));
    }

    /**
     * Against the page the proxy serves (its registry with the JVM, process and Netty binders): every metric the
     * rules and the dashboard name exists, binders' included, and every label they select or group by is one that
     * metric has. A label renamed or dropped empties a panel or mutes an alert as silently as a renamed metric.
     */
    @Test
    void rulesAndDashboardUseOnlyMetricsAndLabelsOfTheServedPage() throws Exception {
        PrometheusMeterRegistry registry = RunCommand.newRegistry();
        try (JvmGcMetrics gc = new JvmGcMetrics()) {
            gc.bindTo(registry); // as RunCommand binds it
            touchEveryMeter(new ProxyMetrics(registry));
            System.gc(); // the GC pause timer appears with the first collection it is told of
            await().atMost(Duration.ofSeconds(10)).until(() -> registry.scrape().contains("jvm_gc_pause_seconds_sum"));

            Map<String, Set<String>> labels = new TreeMap<>();
            registry.scrape().lines().filter(line -> !line.startsWith("#") && !line.isBlank()).forEach(line -> {
                Matcher m = SERIES.matcher(line);
                assertThat(m.lookingAt()).as(line).isTrue();
                Set<String> names = labels.computeIfAbsent(m.group(1), n -> new TreeSet<>(Set.of("job", "instance")));
                Matcher label = SERIES_LABEL.matcher(m.group(2) == null ? "" : m.group(2));
                while (label.find()) {
                    names.add(label.group(1));
                }
            });
            labels.put("up", Set.of("job", "instance"));

            Map<String, String> queries = new LinkedHashMap<>(dashboardQueries());
            for (JsonNode rule : alertRules()) {
                queries.put(rule.path("alert").asText(), rule.path("expr").asText());
            }
            Set<String> problems = new TreeSet<>();
            queries.forEach((where, expr) -> problems.addAll(unknownLabels(where, expr, labels)));
            assertThat(problems).isEmpty();
        }
    }

    /** The checker itself: it must see a wrong label in a matcher and in a grouping, and nothing else. */
    @Test
    void unknownLabelsAreFoundInPromQl() {
        Map<String, Set<String>> labels = Map.of("a_total", Set.of("job", "route"), "b", Set.of("job", "backend"));
        assertThat(unknownLabels("q", "sum by (job, route) (rate(a_total{route=~\"x|y\", job!=\"\"}[5m])) / on (job)"
                + " group_left sum by (job) (b{backend=\"c\"})", labels)).isEmpty();
        assertThat(unknownLabels("q", "sum by (listener) (rate(a_total{rout=\"by (x)\"}[5m]))"
                + " + b_missing{job=\"j\"}", labels))
                .containsExactlyInAnyOrder("q: a_total has no label rout", "q: by (listener): no metric here has it",
                        "q: no series of b_missing");
    }

    private static void touchEveryMeter(ProxyMetrics metrics) {
        // Touch every meter once: some register only on first use.
        metrics.listenerStarted("public", () -> 1000, () -> 1);
        metrics.connectionOpened("public");
        metrics.adminRequestTimeouts().increment();
        metrics.adminConnectionsEvicted().increment();
        metrics.handshakeSucceeded("public", 1_000_000, "orders", "X25519MLKEM768", Duration.ofDays(30));
        metrics.requestStarted("public");
        metrics.requestFinished("public", "orders-api", "GET", 200, "allow", 1_000_000, 10, 20);
        metrics.decision("orders-api", "allow:orders", "allow");
        metrics.backendRegistered("orders", () -> 0, () -> 1);
        metrics.backendResponse("orders", 1_000_000);
        metrics.backendConnectError("orders", "refused");
        metrics.certificates(java.util.List.of(new ProxyMetrics.CertificateExpiry("server", "public", 0, 1_800_000_000L)));
        metrics.configLoaded(1, 1_700_000_000L);
        metrics.accessLogDropped(new AtomicLong(), AtomicLong::doubleValue);
        metrics.handshakeLogSuppressed().increment();
        metrics.crls(java.util.List.of(new ProxyMetrics.CrlNextUpdate("workloads", 0, 1_800_000_000L)));
        metrics.staleCrlAccepted();
        metrics.buildInfo("1.2.3", "0123456789ab");
    }

    @Test
    void metricsDocDescribesEveryMetricAndAlert() throws Exception {
        String doc = Files.readString(METRICS_DOC);
        Stream.of(COUNTERS, GAUGES, HISTOGRAMS).flatMap(List::stream)
                .forEach(name -> assertThat(doc).as("docs/METRICS.md").contains("`" + name + "`"));
        for (JsonNode rule : alertRules()) {
            assertThat(doc).as("docs/METRICS.md").contains("`" + rule.path("alert").asText() + "`");
        }
    }

    /**
     * docs/METRICS.md's tables list each metric's labels: they must be the labels the proxy exports, no more and no
     * fewer, and every value of a closed-set label the proxy exports from the start (handshake reasons, reload
     * reasons and steps, backend results and connect reasons, ...) must be described there.
     */
    @Test
    void metricsDocListsTheLabelsAndLabelValuesTheProxyExports() throws Exception {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        touchEveryMeter(new ProxyMetrics(registry));
        Map<String, Set<String>> exportedLabels = new TreeMap<>();
        Map<String, Set<String>> exportedValues = new TreeMap<>();
        registry.scrape().lines().filter(line -> line.startsWith("mtls_proxy_")).forEach(line -> {
            Matcher m = SERIES.matcher(line);
            assertThat(m.lookingAt()).as(line).isTrue();
            String metric = m.group(1).replaceAll("_(bucket|count|sum|max)$", "");
            Set<String> names = exportedLabels.computeIfAbsent(metric, n -> new TreeSet<>());
            Matcher label = LABEL_VALUE.matcher(m.group(2) == null ? "" : m.group(2));
            while (label.find()) {
                if (!label.group(1).equals("le")) {
                    names.add(label.group(1));
                }
                if (CLOSED_SET_LABELS.contains(label.group(1))) {
                    exportedValues.computeIfAbsent(metric + "{" + label.group(1) + "}", k -> new TreeSet<>())
                            .add(label.group(2));
                }
            }
        });

        String doc = Files.readString(METRICS_DOC);
        Map<String, Set<String>> documentedLabels = new TreeMap<>();
        Matcher row = METRIC_ROW.matcher(doc);
        while (row.find()) {
            Set<String> names = new TreeSet<>();
            Matcher name = Pattern.compile("`(\\w+)`").matcher(row.group(2));
            while (name.find()) {
                names.add(name.group(1));
            }
            documentedLabels.put(row.group(1), names);
        }
        Set<String> mismatched = new TreeSet<>();
        Stream.concat(documentedLabels.keySet().stream(), exportedLabels.keySet().stream()).distinct()
                .filter(metric -> !Objects.equals(documentedLabels.get(metric), exportedLabels.get(metric)))
                .forEach(metric -> mismatched.add(metric + ": documented " + documentedLabels.get(metric)
                        + ", exported " + exportedLabels.get(metric)));
        assertThat(mismatched).as("metrics and their labels in the tables of docs/METRICS.md").isEmpty();
        Set<String> undocumented = new TreeSet<>();
        // named as `value`, or in a selector as label="value"
        exportedValues.forEach((where, values) -> values.stream()
                .filter(v -> !doc.contains("`" + v + "`") && !doc.contains("\"" + v + "\""))
                .forEach(v -> undocumented.add(where + " = " + v)));
        assertThat(undocumented).as("label values docs/METRICS.md does not name").isEmpty();
    }

    /** Labels whose values are a closed set the proxy defines (not configured names, not test data). */
    private static final Set<String> CLOSED_SET_LABELS = Set.of("result", "reason", "step", "role", "decision");
    /** A table row of docs/METRICS.md: | `name` | type | `label`, `label` | meaning |. */
    private static final Pattern METRIC_ROW = Pattern.compile("(?m)^\\| `(mtls_proxy_\\w+)` \\| \\w+ \\|([^|]*)\\|");
    private static final Pattern LABEL_VALUE = Pattern.compile("([a-zA-Z_]\\w*)=\"((?:[^\"\\\\]|\\\\.)*)\"");

    /** The checker itself: it must see metric names wherever PromQL allows them, and nothing else. */
    @Test
    void metricNamesAreFoundInPromQl() {
        assertThat(metricNames("""
                histogram_quantile(0.99, sum by (route, le) (rate(
                  mtls_proxy_request_duration_seconds_bucket{route=~"$route", le!="+Inf"}[$__rate_interval])))
                / on (job) group_left (instance) max without (index) (up offset 5m)
                and mtls_proxy_certificate_expiry_timestamp_seconds - time() < 14 * 86400 or vector(1e3)
                unless sum(rate(mtls_proxy_requests_total{decision="deny", route="sum"}[1h:5m])) by (route) > bool 0
                """))
                .containsExactlyInAnyOrder("mtls_proxy_request_duration_seconds_bucket", "up",
                        "mtls_proxy_certificate_expiry_timestamp_seconds", "mtls_proxy_requests_total");
        assertThat(unknownMetrics(Map.of("renamed", "rate(mtls_proxy_request_total[5m])",
                "bare histogram", "mtls_proxy_request_duration_seconds",
                "jvm", "jvm_memory_used_bytes{area=\"heap\"}")))
                .containsExactlyInAnyOrder("renamed: mtls_proxy_request_total",
                        "bare histogram: mtls_proxy_request_duration_seconds");
    }

    // ---- helpers -----------------------------------------------------------------------------------------------

    private static final Pattern STRING_LITERAL = Pattern.compile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`");
    private static final Pattern LABEL_LIST = Pattern.compile(
            "\\b(?:by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)");
    /** An identifier that is not part of a longer word, a number, a $variable, nor a function being called. */
    private static final Pattern IDENTIFIER = Pattern.compile("(?<![\\w$.:])[a-zA-Z_:][\\w:]*+(?!\\s*\\()");
    private static final Set<String> KEYWORDS = Set.of("and", "or", "unless", "bool", "offset", "atan2", "inf",
            "nan", "by", "without", "on", "ignoring", "group_left", "group_right");
    private static final Pattern LABEL_VALUES = Pattern.compile("^\\s*label_values\\((.*),\\s*[a-zA-Z_]\\w*\\s*\\)\\s*$",
            Pattern.DOTALL);

    /** The metric names a PromQL expression reads. */
    static Set<String> metricNames(String expr) {
        String s = STRING_LITERAL.matcher(expr).replaceAll("\"\"");
        s = s.replaceAll("#[^\\n]*", " ") // comments
                .replaceAll("\\{[^}]*\\}", " ") // label matchers, their strings already emptied
                .replaceAll("\\[[^\\]]*\\]", " "); // ranges and subqueries
        s = LABEL_LIST.matcher(s).replaceAll(" ");
        Set<String> names = new TreeSet<>();
        Matcher m = IDENTIFIER.matcher(s);
        while (m.find()) {
            if (!KEYWORDS.contains(m.group())) {
                names.add(m.group());
            }
        }
        return names;
    }

    /** One series line of the text format: its name, and its labels if it has any. */
    private static final Pattern SERIES = Pattern.compile("([a-zA-Z_:][\\w:]*)(?:\\{(.*)\\})?\\s");
    private static final Pattern SERIES_LABEL = Pattern.compile("([a-zA-Z_]\\w*)=\"(?:[^\"\\\\]|\\\\.)*\"");
    /** A selector with label matchers, once string literals are emptied. */
    private static final Pattern SELECTOR = Pattern.compile("(?<![\\w$.:])([a-zA-Z_:][\\w:]*)\\s*\\{([^}]*)\\}");
    private static final Pattern MATCHER_LABEL = Pattern.compile("([a-zA-Z_]\\w*)\\s*(?:=~|!~|!=|=)");
    private static final Pattern GROUPING = Pattern.compile("\\b(?:by|without)\\s*\\(([^)]*)\\)");

    /**
     * "where: problem" for every metric of the expression with no series, every label a selector matches that its
     * metric lacks, and every label a by/without grouping names that no metric of the expression has.
     */
    static Set<String> unknownLabels(String where, String expr, Map<String, Set<String>> labels) {
        Set<String> problems = new TreeSet<>();
        Set<String> metrics = metricNames(expr);
        for (String metric : metrics) {
            if (!labels.containsKey(metric)) {
                problems.add(where + ": no series of " + metric);
            }
        }
        String s = STRING_LITERAL.matcher(expr).replaceAll("\"\"");
        Matcher selector = SELECTOR.matcher(s);
        while (selector.find()) {
            Set<String> known = labels.get(selector.group(1));
            Matcher label = MATCHER_LABEL.matcher(selector.group(2));
            while (known != null && label.find()) {
                if (!known.contains(label.group(1))) {
                    problems.add(where + ": " + selector.group(1) + " has no label " + label.group(1));
                }
            }
        }
        Matcher grouping = GROUPING.matcher(s);
        while (grouping.find()) {
            for (String label : grouping.group(1).split(",")) {
                String name = label.trim();
                if (!name.isEmpty() && metrics.stream().noneMatch(m -> labels.getOrDefault(m, Set.of()).contains(name))) {
                    problems.add(where + ": " + grouping.group().replaceAll("\\s+", " ").replaceAll("\\(.*", "(")
                            + name + "): no metric here has it");
                }
            }
        }
        return problems;
    }

    /** "where: name" for every metric named in the queries that the proxy does not export. */
    static Set<String> unknownMetrics(Map<String, String> queries) {
        Set<String> unknown = new TreeSet<>();
        queries.forEach((where, expr) -> {
            for (String name : metricNames(expr)) {
                boolean known = EXPORTED.contains(name) || PROMETHEUS_SERIES.contains(name)
                        || BINDER_PREFIXES.stream().anyMatch(name::startsWith);
                if (!known) {
                    unknown.add(where + ": " + name);
                }
            }
        });
        return unknown;
    }

    /** Every query of the dashboard (panels, annotations, variables), keyed by where it is. */
    private static Map<String, String> dashboardQueries() throws IOException {
        JsonNode dashboard = JSON.readTree(DASHBOARD.toFile());
        assertThat(dashboard.path("__inputs").findValuesAsText("name")).contains("DS_PROMETHEUS");
        Map<String, String> queries = new LinkedHashMap<>();
        List<JsonNode> panels = new ArrayList<>();
        dashboard.path("panels").forEach(panels::add);
        dashboard.path("panels").forEach(row -> row.path("panels").forEach(panels::add)); // collapsed rows
        for (JsonNode panel : panels) {
            for (JsonNode target : panel.path("targets")) {
                assertThat(target.path("datasource").path("uid").asText()).as(panel.path("title").asText())
                        .isEqualTo("${DS_PROMETHEUS}");
                queries.put("panel_" + panel.path("id").asText() + "_" + target.path("refId").asText(),
                        target.path("expr").asText());
            }
        }
        int i = 0;
        for (JsonNode annotation : dashboard.path("annotations").path("list")) {
            if (annotation.has("expr")) {
                queries.put("annotation_" + i++, annotation.path("expr").asText());
            }
        }
        for (JsonNode variable : dashboard.path("templating").path("list")) {
            if (variable.path("type").asText().equals("query")) {
                JsonNode query = variable.path("query");
                Matcher m = LABEL_VALUES.matcher(query.isObject() ? query.path("query").asText() : query.asText());
                assertThat(m.matches()).as("variable %s: label_values(metric, label)", variable.path("name")).isTrue();
                queries.put("variable_" + variable.path("name").asText(), m.group(1));
            }
        }
        // Every expr in the file was collected: none hides where the walk above does not look.
        assertThat(queries.values()).containsAll(dashboard.findValuesAsText("expr"));
        return queries;
    }

    private static String withGrafanaVariablesSubstituted(String expr) {
        return expr.replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
                .replace("$__range", "1h")
                .replaceAll("\\$\\{?\\w+}?", ".*"); // the remaining variables sit in regex matchers
    }

    private static List<JsonNode> alertRules() throws IOException {
        List<JsonNode> rules = new ArrayList<>();
        for (JsonNode group : YAML.readTree(PROMETHEUS.resolve("alerts.yml").toFile()).path("groups")) {
            group.path("rules").forEach(rules::add);
        }
        assertThat(rules).isNotEmpty().allMatch(rule -> rule.has("alert"), "every rule is an alert");
        return rules;
    }

    /** Runs promtool in a directory and asserts it exits 0; its output is the failure message. */
    private void promtool(Path dir, String... args) throws Exception {
        List<String> command = new ArrayList<>();
        command.add(promtoolExecutable().toString());
        command.addAll(List.of(args));
        Path output = Files.createTempFile(tmp, "promtool", ".out");
        Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(output.toFile()).start();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("%s did not finish in 30 s", String.join(" ", command));
        }
        assertThat(process.exitValue()).as("%s in %s:%n%s", String.join(" ", command), dir,
                Files.readString(output)).isZero();
    }

    /**
     * promtool from PATH. Without it the promtool checks are skipped locally, but fail in CI (CI=true), which
     * must never pass by skipping them.
     */
    private static Path promtoolExecutable() {
        Optional<Path> promtool = Stream.of(System.getenv().getOrDefault("PATH", "").split(File.pathSeparator))
                .filter(dir -> !dir.isEmpty())
                .map(dir -> Path.of(dir, "promtool"))
                .filter(Files::isExecutable)
                .findFirst();
        String missing = "promtool is not on PATH: apt-get install prometheus (Debian's package ships /usr/bin/promtool)";
        if (promtool.isEmpty() && "true".equals(System.getenv("CI"))) {
            fail(missing + "; CI=true, so this is a failure, not a skip");
        }
        Assumptions.assumeTrue(promtool.isPresent(), missing);
        return promtool.orElseThrow();
    }
}
