package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.app.demo.DemoCheck;
import dev.mtlsproxy.app.demo.DemoPki;
import io.netty.buffer.ByteBufAllocator;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The admin listener of a running proxy (the demo, on ephemeral ports), as Prometheus and operators use it. */
class AdminEndpointsTest {

    @TempDir
    static Path workspace;
    static DemoCommand.Demo demo;
    static Path config;
    static String admin;
    static final HttpClient http = HttpClient.newHttpClient();

    @BeforeAll
    static void start() throws Exception {
        Path configDir = Files.createDirectories(workspace.resolve("config"));
        String yaml = Files.readString(Path.of("..", "config", "demo.yaml"))
                .replace("127.0.0.1:8443", "127.0.0.1:0")
                .replace("http://127.0.0.1:18080", "http://127.0.0.1:0")
                .replace("127.0.0.1:9901", "127.0.0.1:0");
        config = Files.writeString(configDir.resolve("demo.yaml"), yaml);
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        demo = DemoCommand.start(config, quiet, quiet);
        admin = "127.0.0.1:" + demo.proxy().admin().address().getPort();
    }

    @AfterAll
    static void stop() {
        demo.close();
    }

    private static HttpResponse<String> get(String path, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://" + admin + path));
        for (int i = 0; i < headers.length; i += 2) {
            b.header(headers[i], headers[i + 1]);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void metricsAreServedInPrometheusTextFormat() throws Exception {
        HttpResponse<String> response = get("/metrics");
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("content-type")).hasValue("text/plain; version=0.0.4; charset=utf-8");
        assertThat(response.body())
                .contains("mtls_proxy_tls_handshakes_total{listener=\"demo\",reason=\"expired\",result=\"failure\"} 0.0")
                .contains("mtls_proxy_certificate_expiry_timestamp_seconds{backend=\"\",index=\"0\",listener=\"demo\",role=\"server\"}")
                .contains("mtls_proxy_config_generation 1.0")
                .contains("jvm_memory_used_bytes")
                .contains("netty_allocator_memory_used");
    }

    /**
     * The admin listener closes connections over its own cap at accept, as a listener at its maxConnections does;
     * its refusals are in the same family, under its own name, from the start, so an alert on the family sees them.
     */
    @Test
    void adminRefusalsAreCountedWithTheListeners() throws Exception {
        assertThat(get("/metrics").body())
                .contains("mtls_proxy_connections_refused_total{listener=\"admin\",reason=\"limit\"} 0.0\n");
    }

    /**
     * A client that does not send a whole request within the admin listener's request timeout (slowloris) is
     * closed; the closes are counted from the start, so a rise is seen from the first (AdminServerTest moves it).
     */
    @Test
    void adminRequestTimeoutsAreCounted() throws Exception {
        assertThat(get("/metrics").body()).contains("mtls_proxy_admin_request_timeouts_total 0.0\n");
    }

    /**
     * An idle admin connection closed to admit a new one when every slot is taken is logged at most once a minute;
     * the count is there from the start (AdminServerTest moves it).
     */
    @Test
    void adminEvictionsAreCounted() throws Exception {
        assertThat(get("/metrics").body()).contains("mtls_proxy_admin_connections_evicted_total 0.0\n");
    }

    /** The Prometheus info convention: one series, 1, the build in its labels; the same in OpenMetrics. */
    @Test
    void theBuildIsAnInfoMetric() throws Exception {
        BuildInfo build = BuildInfo.current();
        String series = "mtls_proxy_build_info{revision=\"" + build.revision() + "\",version=\""
                + System.getProperty("mtlsproxy.test.version") + "\"} 1";

        assertThat(get("/metrics").body()).contains("# TYPE mtls_proxy_build_info gauge\n").contains(series + "\n");
        assertThat(get("/metrics", "Accept", "application/openmetrics-text; version=1.0.0").body())
                .contains("# TYPE mtls_proxy_build info\n").contains(series + "\n");
    }

    @Test
    void bufferMemoryMetricsDescribeTheAllocatorTheConnectionsUse() throws Exception {
        // Real traffic through the proxy: TLS records and HTTP messages in pooled buffers.
        DemoCheck.Result check = DemoCheck.run(DemoPki.ensure(DemoCommand.pkiDirFor(config), Clock.systemUTC()),
                demo.proxy().server().addresses().get(0));
        assertThat(check.failures()).isEmpty();

        String metrics = get("/metrics").body();
        String used = metrics.lines()
                .filter(line -> line.startsWith("netty_allocator_memory_used{"))
                .filter(line -> line.contains("memory_type=\"direct\""))
                .findFirst().orElseThrow();
        String allocatorType = ByteBufAllocator.DEFAULT.getClass().getSimpleName();
        assertThat(used).contains("allocator_type=\"" + allocatorType + "\"");
        // Bound to an allocator nobody uses, this stayed at 0 however much the proxy held.
        assertThat(Double.parseDouble(used.substring(used.lastIndexOf(' ') + 1))).isPositive();
    }

    @Test
    void openMetricsIsServedWhenAsked() throws Exception {
        HttpResponse<String> response = get("/metrics", "Accept", "application/openmetrics-text; version=1.0.0");
        assertThat(response.headers().firstValue("content-type")).hasValue("application/openmetrics-text; version=1.0.0; charset=utf-8");
        assertThat(response.body()).endsWith("# EOF\n");
    }

    @Test
    void healthAndReadinessAnswerAndTheHealthCommandAgrees() throws Exception {
        assertThat(get("/healthz").statusCode()).isEqualTo(200);
        assertThat(get("/readyz").statusCode()).isEqualTo(200);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(out, true, StandardCharsets.UTF_8);
        assertThat(Main.run(new String[] {"health", "--admin", admin}, ps, ps)).isZero();
        assertThat(Main.run(new String[] {"health", "--admin", "127.0.0.1:1"}, ps, ps)).isEqualTo(1);
    }

    @Test
    void certificatesInUseAreListedWithDaysLeft() throws Exception {
        JsonNode certs = new ObjectMapper().readTree(get("/admin/certs").body());
        assertThat(certs).hasSize(2);
        assertThat(certs.get(0).get("role").asText()).isEqualTo("server");
        assertThat(certs.get(0).get("sans").toString()).contains("localhost");
        assertThat(certs.get(1).get("role").asText()).isEqualTo("client_ca");
        assertThat(certs.get(1).get("daysLeft").asLong()).isBetween(28L, 30L);
    }

    @Test
    void theRunningConfigIsShownWithItsGenerationAndHash() throws Exception {
        JsonNode config = new ObjectMapper().readTree(get("/admin/config").body());
        assertThat(config.get("generation").asLong()).isEqualTo(1);
        assertThat(config.get("sha256").asText()).hasSize(64);
        assertThat(config.at("/config/listeners/0/tls/minVersion").asText()).isEqualTo("TLSv1.2");
        assertThat(config.at("/config/listeners/0/idleTimeout").asText()).as("as YAML takes it").isEqualTo("1m");
        assertThat(config.at("/config/workers/yieldAfter").asText()).isEqualTo("500us");
    }

    @Test
    void theAdminListenerIsNotThePublicOne() {
        assertThat(demo.proxy().admin().address().getPort())
                .isNotEqualTo(demo.proxy().server().addresses().get(0).getPort());
    }

    @Test
    void promtoolAcceptsTheMetricsPage() throws Exception {
        Path promtool = Path.of("/usr/bin/promtool");
        if (!"true".equals(System.getenv("CI"))) {
            Assumptions.assumeTrue(Files.isExecutable(promtool),
                    "promtool not installed (apt-get install prometheus); CI requires it");
        }
        Path page = Files.writeString(workspace.resolve("metrics.txt"), get("/metrics").body());
        Process p = new ProcessBuilder(promtool.toString(), "check", "metrics").redirectInput(page.toFile())
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(output).isZero();
    }
}
