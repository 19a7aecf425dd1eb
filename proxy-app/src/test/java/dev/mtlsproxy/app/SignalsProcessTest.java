package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.awaitility.core.ConditionTimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.io.TempDir;

/**
 * Signals to a real {@code mtls-proxy run} process: SIGHUP reloads, resolving backend names anew; SIGTERM drains a
 * slow request and exits 0.
 */
@EnabledOnOs(OS.LINUX) // GNU env sets the signal handling the process starts with
class SignalsProcessTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final Pattern ADDRESS = Pattern.compile("address=/127\\.0\\.0\\.1:(\\d+)");

    @TempDir
    Path workspace;
    TestPki pki;
    TestBackend backend;
    Process process;
    final BlockingQueue<String> stderr = new LinkedBlockingQueue<>();
    final HttpClient http = HttpClient.newHttpClient();

    @BeforeEach
    void setUp() throws Exception {
        pki = TestPki.create(Files.createDirectories(workspace.resolve("pki")));
        backend = TestBackend.start();
    }

    @AfterEach
    void tearDown() throws Exception {
        if (process != null && process.isAlive()) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        backend.close();
    }

    /** The config of both signal tests: one route for {@code orders}, no file watch, a short drain delay. */
    static String yaml(TestPki pki, String backendUrl, String ordersAllow) {
        return """
                trustAnchors:
                  clients: { caBundle: %3$s }
                listeners:
                  - name: main
                    address: 127.0.0.1:0
                    tls:
                      certificate: %1$s
                      privateKey: %2$s
                identities:
                  orders: { spiffeId: "%4$s" }
                routes:
                  - name: orders-api
                    pathPrefix: /
                    backend: shop
                    allow: [%5$s]
                backends:
                  shop: { url: "%6$s", responseTimeout: 30s }
                accessLog: { enabled: false }
                admin: { address: 127.0.0.1:0 }
                reload: { watch: false }
                shutdown: { drainDelay: 1s, drainTimeout: 15s }
                """.formatted(pki.serverCertificatePem(), pki.serverKeyPem(), pki.caPem(), ORDERS, ordersAllow,
                backendUrl);
    }

    private String yaml(String ordersAllow) {
        return yaml(pki, backend.url(), ordersAllow);
    }

    /** The port in the next stderr line containing {@code event}. */
    private int portOf(String event) throws InterruptedException {
        while (true) {
            String line = stderr.poll(30, TimeUnit.SECONDS);
            assertThat(line).as("the process logs " + event).isNotNull();
            Matcher m = ADDRESS.matcher(line);
            if (line.contains(event) && m.find()) {
                return Integer.parseInt(m.group(1));
            }
        }
    }

    private int readyz(int adminPort) {
        try {
            return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + adminPort + "/readyz")).build(),
                    HttpResponse.BodyHandlers.discarding()).statusCode();
        } catch (Exception e) {
            return -1;
        }
    }

    private int status(InetSocketAddress proxy, String path) throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy, pki.root(), pki.client(ORDERS))) {
            return client.get(path).status();
        }
    }

    /** Waits for the reload a signal asked for to show; on a timeout the proxy's log since start-up says why. */
    private void awaitStatus(InetSocketAddress proxy, int expected) {
        try {
            await().atMost(Duration.ofSeconds(15)).until(() -> status(proxy, "/hello") == expected);
        } catch (ConditionTimeoutException e) {
            throw new AssertionError("GET /hello did not get " + expected + " within 15 s; the proxy's stderr:\n"
                    + String.join("\n", stderr), e);
        }
    }

    /**
     * {@code mtls-proxy run} in its own process, its stderr collected, with SIGHUP as {@code signalHandling} sets it
     * for the process (GNU env: {@code --default-signal=HUP} or {@code --ignore-signal=HUP}). A signal ignored by
     * whoever started the JVM stays ignored in it, and a test run under {@code nohup} passes that on.
     */
    private void startProxy(Path config, String signalHandling, String... jvmOptions) throws Exception {
        startProxy(List.of(), config, signalHandling, jvmOptions);
    }

    /** As above, run by {@code launcher}, a command that ends by running its arguments. */
    private void startProxy(List<String> launcher, Path config, String signalHandling, String... jvmOptions)
            throws Exception {
        List<String> command = new ArrayList<>(launcher);
        command.addAll(List.of("env", signalHandling,
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(List.of(jvmOptions));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "run", "--config",
                config.toString()));
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.redirectOutput(ProcessBuilder.Redirect.DISCARD);
        process = pb.start();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getErrorStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    stderr.add(line);
                }
            } catch (java.io.IOException e) {
                // process ended
            }
        }, "stderr-reader");
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * {@code nohup} starts a process with SIGHUP ignored, and HotSpot then keeps it ignored whatever handler is
     * installed: {@code kill -HUP} would do nothing, without a word. The proxy says so at start, and what still
     * reloads.
     */
    @Test
    @Timeout(60)
    void startedWithSighupIgnoredTheProxySaysSoAndHowToReloadInstead() throws Exception {
        startProxy(Files.writeString(workspace.resolve("proxy.yaml"), yaml("orders")), "--ignore-signal=HUP");

        String warning = lineWith("event=signal_ignored");
        assertThat(warning).contains("WARN", "signal=SIGHUP", "POST /admin/reload", "env --default-signal=HUP");
        InetSocketAddress proxy = new InetSocketAddress("127.0.0.1", portOf("event=listening"));
        assertThat(new ProcessBuilder("kill", "-HUP", Long.toString(process.pid())).start().waitFor()).isZero();
        assertThat(status(proxy, "/hello")).as("still serving").isEqualTo(200);
    }

    /** The next stderr line containing {@code text}. */
    private String lineWith(String text) throws InterruptedException {
        while (true) {
            String line = stderr.poll(30, TimeUnit.SECONDS);
            assertThat(line).as("the process logs " + text).isNotNull();
            if (line.contains(text)) {
                return line;
            }
        }
    }

    @Test
    @Timeout(90)
    void sighupReloadsAndSigtermLetsASlowRequestFinishThenExitsZero() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("orders"));
        startProxy(config, "--default-signal=HUP");
        InetSocketAddress proxy = new InetSocketAddress("127.0.0.1", portOf("event=listening"));
        int admin = portOf("event=admin_listening");
        assertThat(status(proxy, "/hello")).isEqualTo(200);

        // SIGHUP: the edited file (watching is off) is applied.
        Files.writeString(config, yaml(""));
        assertThat(new ProcessBuilder("kill", "-HUP", Long.toString(process.pid())).start().waitFor()).isZero();
        awaitStatus(proxy, 403);
        Files.writeString(config, yaml("orders"));
        assertThat(new ProcessBuilder("kill", "-HUP", Long.toString(process.pid())).start().waitFor()).isZero();
        awaitStatus(proxy, 200);
        while (backend.nextRequest(0, TimeUnit.SECONDS) != null) {
            // forget the requests so far
        }

        // SIGTERM during a slow request.
        try (MtlsClient slow = MtlsClient.connect(proxy, pki.root(), pki.client(ORDERS))) {
            slow.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assertThat(backend.nextRequest(10, TimeUnit.SECONDS)).as("in flight at the backend").isNotNull();

            // kill rather than Process.destroy, which closes the process's stderr pipe as it signals
            assertThat(new ProcessBuilder("kill", "-TERM", Long.toString(process.pid())).start().waitFor()).isZero();

            await().atMost(Duration.ofSeconds(5)).until(() -> readyz(admin) == 503);
            MtlsClient.Response response = slow.readResponse();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("slow hello\n");
        }
        // The durations as the config writes them, as every other line does, not Java's PT1S.
        assertThat(lineWith("event=shutdown_started")).endsWith("drainDelay=1s drainTimeout=15s");
        assertThat(lineWith("event=draining")).endsWith("timeout=15s");
        assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).isZero();
    }

    /**
     * The JVM caches a name's addresses for 30 s and its failure for 10 s unless told otherwise; a reload must see
     * what the name resolves to when it runs. The process resolves from a hosts file of the test's own
     * ({@code jdk.net.hosts.file}, read at every lookup that reaches it), so the test can move the name.
     */
    @Test
    @Timeout(60)
    void sighupResolvesABackendNameAgainEvenRightAfterItMoved() throws Exception {
        Path hosts = Files.writeString(workspace.resolve("hosts"), "127.0.0.1 localhost\n");
        Path config = Files.writeString(workspace.resolve("proxy.yaml"),
                yaml(pki, "http://shop.backend.test:" + backend.port(), "orders"));
        startProxy(config, "--default-signal=HUP", "-Djdk.net.hosts.file=" + hosts);
        InetSocketAddress proxy = new InetSocketAddress("127.0.0.1", portOf("event=listening"));
        assertThat(status(proxy, "/hello")).as("the name resolves nowhere yet").isEqualTo(502);

        Files.writeString(hosts, "127.0.0.1 localhost shop.backend.test\n");
        reloadBySignal();
        assertThat(status(proxy, "/hello")).as("the failed lookup is not remembered").isEqualTo(200);

        // Loopback too, but nothing listens there.
        Files.writeString(hosts, "127.0.0.1 localhost\n127.0.0.2 shop.backend.test\n");
        reloadBySignal();
        assertThat(status(proxy, "/hello")).as("the old address is not remembered").isEqualTo(502);
    }

    /**
     * A process that may open no inotify instance (an exhausted {@code max_user_instances}, here a user namespace of
     * the test's own whose limit is 0, which leaves the machine's alone) starts all the same, says that file changes
     * are not watched and what still reloads, and SIGHUP reloads.
     */
    @Test
    @Timeout(60)
    void aWatchThatCannotBeOpenedAtStartIsLoggedAndSighupStillReloads() throws Exception {
        List<String> noInotify = List.of("unshare", "--user", "--map-root-user", "sh", "-c",
                "echo 0 > /proc/sys/user/max_inotify_instances && exec \"$@\"", "sh");
        Assumptions.assumeTrue(new ProcessBuilder(concat(noInotify, List.of("true"))).start().waitFor() == 0,
                "unshare --user works here and the namespace's inotify limit can be set");
        Path config = Files.writeString(workspace.resolve("proxy.yaml"),
                yaml("orders").replace("reload: { watch: false }", "reload: { watch: true }"));
        startProxy(noInotify, config, "--default-signal=HUP");

        InetSocketAddress proxy = new InetSocketAddress("127.0.0.1", portOf("event=listening"));
        assertThat(lineWith("event=config_watch_failed")).contains("ERROR", "restart_in=1s",
                "file changes are not watched until then; SIGHUP and POST /admin/reload still reload");
        assertThat(status(proxy, "/hello")).isEqualTo(200);

        Files.writeString(config, yaml("").replace("reload: { watch: false }", "reload: { watch: true }"));
        reloadBySignal();
        assertThat(status(proxy, "/hello")).as("the edit applied by SIGHUP").isEqualTo(403);
    }

    private static List<String> concat(List<String> first, List<String> second) {
        List<String> all = new ArrayList<>(first);
        all.addAll(second);
        return all;
    }

    private void reloadBySignal() throws Exception {
        assertThat(new ProcessBuilder("kill", "-HUP", Long.toString(process.pid())).start().waitFor()).isZero();
        assertThat(lineWith("event=reload_succeeded")).contains("trigger=sighup");
    }
}
