package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.app.admin.ReloadOutcome;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.LoadedConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.proxy.ProxyServer;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.WatchService;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.slf4j.LoggerFactory;

/**
 * Reload triggers of the real application: file changes (including a Kubernetes-style {@code ..data} symlink swap),
 * {@code POST /admin/reload}, and what a bad file does (nothing, loudly).
 */
class ConfigReloadTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING = "spiffe://prod.test/ns/shop/sa/billing";
    /** How reloads read the file when a test changes another step. */
    static final ConfigReloader.Loader FROM_FILE = ConfigLoader::loadWithPositions;

    @TempDir
    Path workspace;
    TestPki pki;
    TestBackend backend;
    RunCommand.Running running;
    final HttpClient http = HttpClient.newHttpClient();
    /** Off in the admin tests: the endpoint is the trigger under test there, not the file watcher. */
    boolean watch = true;
    /** Thrown by the next reload's load step, for {@link #startFailingTheNextLoad}. */
    final AtomicReference<Error> failNext = new AtomicReference<>();

    @BeforeEach
    void setUp() throws Exception {
        pki = TestPki.create(Files.createDirectories(workspace.resolve("pki")));
        backend = TestBackend.start();
    }

    @AfterEach
    void tearDown() {
        if (running != null) {
            running.close();
        }
        backend.close();
    }

    private String yaml(String billingAllow) {
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
                  billing: { spiffeId: "%5$s" }
                routes:
                  - name: orders-api
                    pathPrefix: /orders
                    backend: shop
                    allow: [orders]
                  - name: billing-api
                    pathPrefix: /billing
                    backend: shop
                    allow: [%6$s]
                backends:
                  shop: { url: "%7$s" }
                accessLog: { enabled: false }
                admin: { address: 127.0.0.1:0 }
                reload: { watch: %8$s, debounce: 200ms }
                """.formatted(pki.serverCertificatePem(), pki.serverKeyPem(), pki.caPem(), ORDERS, BILLING,
                billingAllow, backend.url(), watch);
    }

    private void start(Path config) throws Exception {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet);
    }

    /** Starts the proxy with reloads reading the file as usual, except that the next one throws {@code failNext}. */
    private void startFailingTheNextLoad(Path config) throws Exception {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet, file -> {
            Error e = failNext.getAndSet(null);
            if (e != null) {
                throw e;
            }
            return ConfigLoader.loadWithPositions(file);
        });
    }

    private int billingStatus() throws Exception {
        try (MtlsClient client = MtlsClient.connect(running.server().addresses().get(0), pki.root(),
                pki.client(BILLING))) {
            return client.get("/billing").status();
        }
    }

    private HttpResponse<String> admin(String method, String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + running.admin().address().getPort() + path))
                .method(method, HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** What a test does at one point of a reload: may write files. */
    @FunctionalInterface
    interface Step {
        void run() throws Exception;
    }

    /**
     * Runs a step once, on the thread that logs it, when a logger first logs a line containing a fragment: the
     * reload waits for it, so it lands at that point of the reload however busy the machine is.
     */
    static final class OnLogLine extends AppenderBase<ILoggingEvent> implements AutoCloseable {
        private final Logger logger;
        private final String fragment;
        private final Step step;
        private final CountDownLatch ran = new CountDownLatch(1);
        private final AtomicReference<Exception> failed = new AtomicReference<>();

        private OnLogLine(Class<?> type, String fragment, Step step) {
            this.logger = (Logger) LoggerFactory.getLogger(type);
            this.fragment = fragment;
            this.step = step;
            setContext(logger.getLoggerContext());
            start();
            logger.addAppender(this);
        }

        @Override
        protected void append(ILoggingEvent event) {
            if (ran.getCount() > 0 && event.getFormattedMessage().contains(fragment)) {
                try {
                    step.run();
                } catch (Exception e) {
                    failed.set(e);
                }
                ran.countDown();
            }
        }

        /** Whether the step has run; throws what it threw. */
        boolean ran() {
            if (failed.get() != null) {
                throw new AssertionError("the step on \"" + fragment + "\" failed", failed.get());
            }
            return ran.getCount() == 0;
        }

        @Override
        public void close() {
            logger.detachAppender(this);
            stop();
        }
    }

    private static OnLogLine onLogLine(Class<?> type, String fragment, Step step) {
        return new OnLogLine(type, fragment, step);
    }

    private static void replace(Path file, String content) throws Exception {
        Path tmp = Files.writeString(file.resolveSibling(file.getFileName() + ".tmp"), content);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    @Test
    void editingTheConfigFileReloadsItAndTheAdminConfigShowsTheNewGeneration() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        assertThat(billingStatus()).isEqualTo(200);

        replace(config, yaml(""));

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
        JsonNode shown = new ObjectMapper().readTree(admin("GET", "/admin/config").body());
        assertThat(shown.get("generation").asLong()).isEqualTo(2);
        assertThat(shown.at("/config/routes/1/allow")).isEmpty();
    }

    @Test
    void aConfigEditedWhileTheProxyStartsIsLoadedOnceTheWatchIsUp() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        String hashBeforeLoading = ConfigReloader.Fingerprint.configHash(config);
        ProxyConfig loaded = ValidateCommand.load(config, quiet);

        replace(config, yaml("")); // after the load, before any watch: no event will tell of it
        running = RunCommand.start(config, hashBeforeLoading, loaded, quiet);

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    @Test
    void aRotatedCaBundleIsPickedUpWithoutTouchingTheConfig() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        var nextRoot = TestPki.newRoot("next root");

        pki.write("ca.pem", pki.root().getCertificatePEM() + nextRoot.getCertificatePEM());

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        try (MtlsClient client = MtlsClient.connect(running.server().addresses().get(0), pki.root(),
                TestPki.clientOf(nextRoot, ORDERS))) {
            assertThat(client.get("/orders").status()).isEqualTo(200);
        }
    }

    @Test
    void aKubernetesSymlinkSwapOfTheMountedDirectoryReloads() throws Exception {
        // The layout kubelet makes for a ConfigMap volume: proxy.yaml -> ..data/proxy.yaml, ..data -> ..v1
        Path mount = Files.createDirectories(workspace.resolve("mount"));
        Files.writeString(Files.createDirectories(mount.resolve("..v1")).resolve("proxy.yaml"), yaml("billing"));
        Files.createSymbolicLink(mount.resolve("..data"), Path.of("..v1"));
        Path config = Files.createSymbolicLink(mount.resolve("proxy.yaml"), Path.of("..data", "proxy.yaml"));
        start(config);
        assertThat(billingStatus()).isEqualTo(200);

        Files.writeString(Files.createDirectories(mount.resolve("..v2")).resolve("proxy.yaml"), yaml(""));
        Path tmp = Files.createSymbolicLink(mount.resolve("..data_tmp"), Path.of("..v2"));
        Files.move(tmp, mount.resolve("..data"), StandardCopyOption.ATOMIC_MOVE);

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * Found by ReloadThroughFilesPropertyTest: a swap whose reload failed before the new configuration was read (here
     * a YAML syntax error) left the folder the config's link now leads to unwatched, since only a configuration that
     * was read had its files' folders registered, and the old folder was gone. The fix, written in place through the
     * link (or renamed over the file) in that folder, raised events nobody watched, and was never loaded.
     */
    @Test
    void anEditAfterASwapWhoseReloadFailedIsSeenInTheFolderTheLinkNowLeadsTo() throws Exception {
        MountedFolder mount = MountedFolder.create(workspace.resolve("mount"), Map.of("proxy.yaml", yaml("billing")));
        Path config = mount.file("proxy.yaml");
        start(config);
        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            mount.swap(Map.of("proxy.yaml", yaml("") + "routes: [\n"));
            log.await("event=reload_failed", "trigger=file_change", "not valid YAML");
        }

        mount.writeAndRename("proxy.yaml", yaml(""));

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * The same for a reload the proxy refuses after reading the file (a moved listener needs a restart): the files
     * the refused configuration names are watched, as those of an invalid one are, so an edit to one is tried again.
     */
    @Test
    void aFileNamedOnlyByAConfigurationRefusedForARestartIsWatched() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Path elsewhere = Files.createDirectories(workspace.resolve("elsewhere")).resolve("ca.pem");
        Files.copy(pki.caPem(), elsewhere);
        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            replace(config, yaml("").replace(pki.caPem().toString(), elsewhere.toString())
                    .replace("address: 127.0.0.1:0\n    tls", "address: 127.0.0.1:1\n    tls"));
            log.await("event=reload_failed", "trigger=file_change", "reason=restart_required");

            Files.writeString(elsewhere, pki.root().getCertificatePEM() + TestPki.newRoot("next root")
                    .getCertificatePEM());

            await("the edit is tried").atMost(Duration.ofSeconds(10)).until(() -> log.lines().stream()
                    .filter(l -> l.contains("reason=restart_required")).count() == 2);
        }
        assertThat(running.server().generation()).isEqualTo(1);
    }

    /**
     * A reload hashes the files its configuration names before the server reads them; the folder of a newly named one
     * was watched only once the reload was over. An edit landing in between (written here while the server builds
     * the new generation) raised no event anyone saw, and the file kept its stale hash until some other change.
     */
    @Test
    void aFileWrittenWhileTheReloadThatNamesItRunsIsLoadedNext() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Path elsewhere = Files.createDirectories(workspace.resolve("elsewhere")).resolve("ca.pem");
        Files.copy(pki.caPem(), elsewhere);
        try (OnLogLine edit = onLogLine(ProxyServer.class, "event=config_reloaded generation=2",
                () -> Files.writeString(elsewhere, pki.root().getCertificatePEM() + TestPki.newRoot("next root")
                        .getCertificatePEM()))) {

            replace(config, yaml("").replace(pki.caPem().toString(), elsewhere.toString()));

            await("the edit is loaded").atMost(Duration.ofSeconds(10))
                    .until(() -> edit.ran() && running.server().generation() == 3);
        }
    }

    /**
     * The same for a reload refused for a restart, with the edit written as the refusal is logged: a user (or
     * {@link #aFileNamedOnlyByAConfigurationRefusedForARestartIsWatched}, which failed now and then on a busy
     * machine) who edits the file on reading that line must not lose the edit.
     */
    @Test
    void aFileWrittenAsARefusalForARestartIsLoggedIsTriedAgain() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Path elsewhere = Files.createDirectories(workspace.resolve("elsewhere")).resolve("ca.pem");
        Files.copy(pki.caPem(), elsewhere);
        try (LogCapture log = LogCapture.of(ConfigReloader.class);
                OnLogLine edit = onLogLine(ConfigReloader.class, "reason=restart_required",
                        () -> Files.writeString(elsewhere, pki.root().getCertificatePEM()
                                + TestPki.newRoot("next root").getCertificatePEM()))) {

            replace(config, yaml("").replace(pki.caPem().toString(), elsewhere.toString())
                    .replace("address: 127.0.0.1:0\n    tls", "address: 127.0.0.1:1\n    tls"));

            await("the edit is tried").atMost(Duration.ofSeconds(10)).until(() -> edit.ran() && log.lines().stream()
                    .filter(l -> l.contains("reason=restart_required")).count() == 2);
        }
        assertThat(running.server().generation()).isEqualTo(1);
    }

    @Test
    void aBurstOfWritesIsOneReload() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);

        for (int i = 0; i < 5; i++) {
            replace(config, yaml(i % 2 == 0 ? "" : "billing") + "# write " + i + "\n");
        }

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() >= 2);
        await().during(Duration.ofMillis(800)).atMost(Duration.ofSeconds(3))
                .until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    @Test
    void aLogWrittenWithoutPauseNextToTheConfigDoesNotHoldBackAReload() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        // An access log in the config's directory, appended to more often than the 200 ms debounce: every write
        // used to restart the quiet period, so the edit below was never applied while the log was busy.
        Path log = workspace.resolve("access.log");
        Thread logger = new Thread(() -> {
            try {
                while (!Thread.currentThread().isInterrupted()) {
                    Files.writeString(log, "{\"status\":200}\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                    Thread.sleep(20);
                }
            } catch (Exception stopped) {
                // interrupted at the end of the test
            }
        }, "busy-log");
        logger.start();
        try {
            replace(config, yaml(""));

            await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
            assertThat(billingStatus()).isEqualTo(403);
        } finally {
            logger.interrupt();
            logger.join();
        }
    }

    @Test
    void anInvalidConfigViaAdminReloadChangesNothingAndSaysWhy() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Files.writeString(config, yaml("nobody"));

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(422);
        JsonNode body = new ObjectMapper().readTree(response.body());
        assertThat(body.get("result").asText()).isEqualTo("failure");
        assertThat(body.get("reason").asText()).isEqualTo("invalid_config");
        assertThat(body.get("generation").asLong()).isEqualTo(1);
        assertThat(body.get("problems").get(0).asText())
                .startsWith("routes[1].allow[0]: \"nobody\" (expected: a name under identities:");
        assertThat(admin("GET", "/readyz").statusCode()).isEqualTo(200);
        assertThat(billingStatus()).isEqualTo(200);
        assertThat(admin("GET", "/metrics").body())
                .contains("mtls_proxy_config_reloads_total{reason=\"invalid_config\",result=\"failure\"} 1.0")
                .contains("mtls_proxy_config_generation 1.0");
        assertThat(admin("GET", "/admin/reload").statusCode()).isEqualTo(405);
    }

    /**
     * Any page the operator's browser opens may POST a plain HTML form to 127.0.0.1:9901 (or rebind its own name
     * to it); the browser marks such a request with Origin and Sec-Fetch-Site, which no operator's tool sends.
     */
    @Test
    void aReloadAskedForByAWebPageIsRefusedAndChangesNothing() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Files.writeString(config, yaml(""));
        String reload = "http://127.0.0.1:" + running.admin().address().getPort() + "/admin/reload";

        for (String[] header : new String[][] {{"Origin", "https://evil.example"}, {"Origin", "null"},
                {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-origin"}}) {
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create(reload))
                    .header(header[0], header[1]).header("Content-Type", "application/x-www-form-urlencoded")
                    .POST(HttpRequest.BodyPublishers.ofString("a=b")).build(), HttpResponse.BodyHandlers.ofString());

            assertThat(response.statusCode()).as(header[0] + ": " + header[1]).isEqualTo(403);
        }
        assertThat(running.server().generation()).isEqualTo(1);
        assertThat(billingStatus()).isEqualTo(200);
        assertThat(admin("POST", "/admin/reload").statusCode()).as("curl -X POST, as documented").isEqualTo(200);
    }

    /**
     * Found by ConfigMutationTest: nesting was bounded only by Jackson's 1000 levels, within which a few hundred allOf
     * levels overflow the stack of a loading thread (ConfigLoaderTest has the small-stack case), an Error no reload
     * path reports. Beyond 64 levels a file is now a problem, and a reload that meets one changes nothing.
     */
    @Test
    void aConfigNestedTooDeeplyViaAdminReloadChangesNothingAndSaysWhy() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        String deep = "{allOf: [".repeat(490) + "{subjectCn: x}" + "]}".repeat(490);
        Files.writeString(config, yaml("billing").replace("  billing: {", "  deep: " + deep + "\n  billing: {"));

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(422);
        JsonNode body = new ObjectMapper().readTree(response.body());
        assertThat(body.get("reason").asText()).isEqualTo("invalid_config");
        assertThat(body.get("problems").get(0).asText())
                .startsWith("not valid YAML - beyond the reader's limits (expected: at most 64 levels of nesting");
        assertThat(running.server().generation()).isEqualTo(1);
        assertThat(billingStatus()).isEqualTo(200);
    }

    /**
     * An Error from a step of a reload escaped the reload thread's catch of RuntimeException: nothing was logged or
     * counted. No file makes one happen now that nesting is bounded (above), so the load step throws it: a stack
     * overflow, as on some structure nobody foresaw.
     */
    @Test
    void anErrorWhileReloadingAChangedFileChangesNothingIsLoggedAndCountedAndTheNextEditIsApplied()
            throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        startFailingTheNextLoad(config);
        failNext.set(new StackOverflowError());

        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            replace(config, yaml(""));
            assertThat(log.await("event=reload_failed", "trigger=file_change", "reason=internal_error"))
                    .contains("cause=\"java.lang.StackOverflowError\"");
        }
        assertThat(running.server().generation()).isEqualTo(1);
        assertThat(billingStatus()).isEqualTo(200);
        assertThat(admin("GET", "/metrics").body())
                .contains("mtls_proxy_config_reloads_total{reason=\"internal_error\",result=\"failure\"} 1.0");

        replace(config, yaml("") + "# edited again\n");

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * An exception nobody foresaw while the new generation is built (here a backend timeout past what the clock
     * counts, which validation refuses, handed straight to the server) is logged with its stack trace, as README
     * promises for reason other; it was logged as a bare problem="java.lang.ArithmeticException: long overflow".
     */
    @Test
    void anUnforeseenExceptionBuildingTheNewGenerationIsLoggedWithItsStackTrace() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet, file -> {
            LoadedConfig loaded = ConfigLoader.loadWithPositions(file);
            ProxyConfig overflowing = loaded.config().withBackends(Map.of("shop",
                    loaded.config().backends().get("shop").withCoolDown(Duration.ofDays(1_000_000_000_000L))));
            return new LoadedConfig(overflowing, loaded.positions());
        });

        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            assertThat(admin("POST", "/admin/reload").statusCode()).isEqualTo(422);
            String line = log.await("event=reload_failed", "trigger=admin", "reason=other");

            assertThat(line).contains("cause=\"java.lang.ArithmeticException: long overflow\"");
            assertThat(log.thrownWith(line)).isEqualTo("java.lang.ArithmeticException");
        }
        assertThat(running.server().generation()).isEqualTo(1);
        assertThat(billingStatus()).isEqualTo(200);
        assertThat(admin("GET", "/metrics").body())
                .contains("mtls_proxy_config_reloads_total{reason=\"other\",result=\"failure\"} 1.0");
    }

    /**
     * A reload failing on an Error did not record what it tried, unlike one failing on an invalid file: every later
     * event on a watched file found the config "changed" since the last reload and loaded it again, failing and
     * logging the same way each time. Here a rewrite of the CA bundle with the same bytes and a touch of the config
     * file are such events; neither changes what a reload would read, so neither tries again. A real edit does.
     */
    @Test
    void aReloadFailingOnAnErrorIsNotRetriedOnUnrelatedEventsButIsOnTheNextEdit() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        AtomicInteger loads = new AtomicInteger();
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet, file -> {
            loads.incrementAndGet();
            throw new NoClassDefFoundError("dev/mtlsproxy/config/ReplacedWithTheJar");
        });

        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            replace(config, yaml(""));
            log.await("event=reload_failed", "trigger=file_change", "reason=internal_error");
            assertThat(loads.get()).isEqualTo(1);

            pki.write("ca.pem", Files.readString(pki.caPem()));
            Files.setLastModifiedTime(config, FileTime.from(Instant.now().plusSeconds(5)));

            // Four quiet periods: time enough for a check of each event, which used to load the file again.
            await("no retry of the unchanged file").during(Duration.ofMillis(800)).atMost(Duration.ofSeconds(3))
                    .until(() -> loads.get() == 1);

            replace(config, yaml("") + "# edited again\n");
            await("the next edit is tried").atMost(Duration.ofSeconds(10)).until(() -> loads.get() == 2);
        }
        assertThat(running.server().generation()).isEqualTo(1);
    }

    /**
     * When the watch loop ended, file changes were never watched again: on an error, after logging it; on its watch
     * service closing under it, silently, taken for the proxy closing. Here the first watch service is closed under
     * the loop (the JDK's only checked way for a test to end a real watch). The watch now starts again after a
     * back-off, on a fresh service, and compares the files once: the edit lands while no watch runs (the second
     * service is handed out only after it), so no event tells of it.
     */
    @Test
    void aWatchThatEndsStartsAgainAndLoadsTheChangeMadeWhileItWasDown() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        AtomicReference<WatchService> first = new AtomicReference<>();
        CountDownLatch restarting = new CountDownLatch(1);
        CountDownLatch edited = new CountDownLatch(1);

        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet, FROM_FILE, () -> {
                WatchService real = FileSystems.getDefault().newWatchService();
                if (first.compareAndSet(null, real)) {
                    return real;
                }
                // On the reload thread, after the start-up comparison (due at the debounce, before the back-off).
                restarting.countDown();
                try {
                    if (!edited.await(10, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("the test never edited the file");
                    }
                } catch (InterruptedException e) {
                    throw new java.io.InterruptedIOException("closed while waiting for the edit");
                }
                return real;
            });
            first.get().close();

            assertThat(log.await("event=config_watch_failed")).contains("ClosedWatchServiceException")
                    .contains("restart_in=1s");
            assertThat(restarting.await(10, TimeUnit.SECONDS)).as("the watch is started again").isTrue();
            replace(config, yaml(""));
            edited.countDown();

            assertThat(log.await("event=config_watch_restarted")).contains("directories=");
            await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
            assertThat(billingStatus()).isEqualTo(403);

            replace(config, yaml("billing"));
            await("the restarted watch sees the next edit").atMost(Duration.ofSeconds(10))
                    .until(() -> running.server().generation() == 3);
            assertThat(billingStatus()).isEqualTo(200);
        }
    }

    /**
     * Between a watch ending and its restart (a back-off of 1 s at first), the log promises that SIGHUP and the admin
     * endpoint still reload. A reload registers the folders of the files it reads, and the ended watch's service
     * refused that with ClosedWatchServiceException, which failed the reload as an internal error.
     */
    @Test
    void aReloadWhileTheWatchWaitsForItsRestartStillApplies() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        AtomicReference<WatchService> first = new AtomicReference<>();

        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet, FROM_FILE, () -> {
                WatchService real = FileSystems.getDefault().newWatchService();
                first.compareAndSet(null, real);
                return real;
            });
            first.get().close();
            assertThat(log.await("event=config_watch_failed")).contains("restart_in=1s");
            // The CA bundle from a folder not watched yet, whose registration the ended watch refuses.
            Path bundle = Files.copy(pki.caPem(), Files.createDirectories(workspace.resolve("cas")).resolve("ca.pem"));
            replace(config, yaml("").replace(pki.caPem().toString(), bundle.toString()));

            // Queued on the reload thread now, ahead of the restart it scheduled a second from now.
            ReloadOutcome outcome = running.reloader().reload("sighup").get(10, TimeUnit.SECONDS);

            assertThat(outcome.success()).as("%s", outcome).isTrue();
            assertThat(running.server().generation()).isEqualTo(2);
            assertThat(billingStatus()).isEqualTo(403);
            assertThat(log.await("event=config_watch_restarted")).contains("directories=");
        }
    }

    static Stream<Error> recoverableErrors() {
        return Stream.of(new NoClassDefFoundError("dev/mtlsproxy/config/ReplacedWithTheJar"),
                new ExceptionInInitializerError("a static initialiser failed"),
                new AssertionError("an invariant a library checks"));
    }

    /** The same through POST /admin/reload: answered 422 with the reason, where it was "other" and no count. */
    @ParameterizedTest
    @MethodSource("recoverableErrors")
    void anErrorWhileReloadingViaAdminIsAnsweredWithItsReasonAndTheNextReloadApplies(Error error) throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        startFailingTheNextLoad(config);
        Files.writeString(config, yaml(""));
        failNext.set(error);

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(422);
        JsonNode body = new ObjectMapper().readTree(response.body());
        assertThat(body.get("reason").asText()).isEqualTo("internal_error");
        assertThat(body.get("generation").asLong()).isEqualTo(1);
        assertThat(body.get("problems").get(0).asText()).isEqualTo(error.toString());
        assertThat(billingStatus()).isEqualTo(200);
        assertThat(admin("GET", "/metrics").body())
                .contains("mtls_proxy_config_reloads_total{reason=\"internal_error\",result=\"failure\"} 1.0");

        assertThat(admin("POST", "/admin/reload").statusCode()).isEqualTo(200);
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * Running out of memory is left to the JVM (the container image exits on it): a reload does not pretend to
     * have handled it, so it is not counted as a failed reload of any reason. The reload thread takes the next one.
     */
    @Test
    void anOutOfMemoryErrorWhileReloadingIsNotTakenForAFailedReload() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        startFailingTheNextLoad(config);
        Files.writeString(config, yaml(""));
        failNext.set(new OutOfMemoryError("Java heap space"));

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(422);
        assertThat(response.body()).contains("java.lang.OutOfMemoryError");
        assertThat(admin("GET", "/metrics").body())
                .contains("mtls_proxy_config_reloads_total{reason=\"internal_error\",result=\"failure\"} 0.0")
                .contains("mtls_proxy_config_reloads_total{reason=\"other\",result=\"failure\"} 0.0");
        assertThat(admin("POST", "/admin/reload").statusCode()).isEqualTo(200);
    }

    @Test
    void aTruncatedPemViaAdminReloadChangesNothing() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        String pem = pki.newServerCertificate().getCertificatePEM();
        pki.write("server.pem", pem.substring(0, pem.length() - 40));

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(422);
        JsonNode body = new ObjectMapper().readTree(response.body());
        assertThat(body.get("problems").get(0).asText()).startsWith("listeners[0].tls.certificate: "
                + pki.serverCertificatePem());
        assertThat(billingStatus()).isEqualTo(200);
    }

    @Test
    void aValidChangeViaAdminReloadAnswersWithTheNewGeneration() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Files.writeString(config, yaml(""));

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(200);
        JsonNode body = new ObjectMapper().readTree(response.body());
        assertThat(body.get("result").asText()).isEqualTo("success");
        assertThat(body.get("generation").asLong()).isEqualTo(2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * README: the request reloads whatever the files hold, so an edit the watch loaded before the request reached the
     * reload thread is loaded again, and the answer is the generation the request made, not the watch's.
     */
    @Test
    void anAdminReloadAfterTheWatchLoadedTheEditAnswersTheGenerationItMade() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        replace(config, yaml(""));
        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(new ObjectMapper().readTree(response.body()).get("generation").asLong()).isEqualTo(3);
        assertThat(admin("GET", "/metrics").body()).contains("mtls_proxy_config_generation 3.0")
                .contains("mtls_proxy_config_reloads_total{reason=\"none\",result=\"success\"} 2.0");
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * Reloads asked for while one runs are one more reload, not one each: queued one per ask, a client of the admin
     * listener could keep the reload thread busy for as long as it liked, and an edit, a SIGHUP or a rotated CRL
     * waited behind every reload it had asked for.
     */
    @Test
    void reloadsAskedForWhileOneRunsAreOneMoreReloadNotOneEach() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        CountDownLatch loading = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger loads = new AtomicInteger();
        startWithTheFirstLoadHeld(config, loading, release, loads);
        CompletableFuture<HttpResponse<String>> first = http.sendAsync(HttpRequest.newBuilder(URI.create(
                "http://127.0.0.1:" + running.admin().address().getPort() + "/admin/reload"))
                .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(loading.await(10, TimeUnit.SECONDS)).as("the first reload is reading the file").isTrue();
        Files.writeString(config, yaml(""));

        List<CompletableFuture<ReloadOutcome>> asked = Stream.generate(() -> running.reloader().reload("sighup"))
                .limit(50).toList();
        release.countDown();

        assertThat(first.get(10, TimeUnit.SECONDS).body()).contains("\"generation\" : 2");
        for (CompletableFuture<ReloadOutcome> outcome : asked) {
            assertThat(outcome.get(10, TimeUnit.SECONDS)).as("one reload after the first, read after every ask")
                    .isEqualTo(new ReloadOutcome(true, 3, null, List.of()));
        }
        assertThat(loads).as("the file was read by the first reload and by the one the others joined").hasValue(2);
        assertThat(billingStatus()).isEqualTo(403);
        assertThat(running.reloader().reload("sighup").get(10, TimeUnit.SECONDS).generation())
                .as("asked for once the queued one started: a reload of its own").isEqualTo(4);
    }

    /** A reload queued behind one still running when the proxy stops is answered, and so is one asked for after. */
    @Test
    void aReloadQueuedWhenTheProxyStopsIsAnsweredNotLeftWaiting() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        CountDownLatch loading = new CountDownLatch(1);
        startWithTheFirstLoadHeld(config, loading, new CountDownLatch(1), new AtomicInteger());
        running.reloader().reload("sighup");
        assertThat(loading.await(10, TimeUnit.SECONDS)).isTrue();
        CompletableFuture<ReloadOutcome> queued = running.reloader().reload("admin");

        running.reloader().close();

        assertThat(queued.get(10, TimeUnit.SECONDS).problems()).containsExactly("the proxy is shutting down");
        assertThat(running.reloader().reload("admin").get(10, TimeUnit.SECONDS).problems())
                .containsExactly("the proxy is shutting down");
    }

    /** Starts the proxy with reloads reading the file as usual, the first one only once {@code release} opens. */
    private void startWithTheFirstLoadHeld(Path config, CountDownLatch loading, CountDownLatch release,
            AtomicInteger loads) throws Exception {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet, file -> {
            loads.incrementAndGet();
            loading.countDown();
            try {
                release.await(); // the first reload holds here until the test has asked for the others
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return ConfigLoader.loadWithPositions(file);
        });
    }

    @Test
    void connectErrorsOfEveryBackendAreServedAtZeroBeforeTheFirstOneFromStartAndFromTheReloadThatAddsIt()
            throws Exception {
        // rate() and increase() see an increment only from a sample before it: a series that is born with its
        // first connect error would hide that error from the alert.
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        assertThat(connectErrorSeries()).containsExactly(
                "mtls_proxy_backend_connect_errors_total{backend=\"shop\",reason=\"other\"} 0.0",
                "mtls_proxy_backend_connect_errors_total{backend=\"shop\",reason=\"refused\"} 0.0",
                "mtls_proxy_backend_connect_errors_total{backend=\"shop\",reason=\"timeout\"} 0.0",
                "mtls_proxy_backend_connect_errors_total{backend=\"shop\",reason=\"tls\"} 0.0");

        Files.writeString(config, yaml("billing").replace("backends:\n", "backends:\n  inventory: { url: \""
                + backend.url() + "\" }\n"));
        assertThat(admin("POST", "/admin/reload").statusCode()).isEqualTo(200);

        assertThat(connectErrorSeries()).contains(
                "mtls_proxy_backend_connect_errors_total{backend=\"inventory\",reason=\"other\"} 0.0",
                "mtls_proxy_backend_connect_errors_total{backend=\"inventory\",reason=\"refused\"} 0.0",
                "mtls_proxy_backend_connect_errors_total{backend=\"inventory\",reason=\"timeout\"} 0.0",
                "mtls_proxy_backend_connect_errors_total{backend=\"inventory\",reason=\"tls\"} 0.0");
    }

    private List<String> connectErrorSeries() throws Exception {
        return admin("GET", "/metrics").body().lines()
                .filter(line -> line.startsWith("mtls_proxy_backend_connect_errors_total{")).sorted().toList();
    }

    @Test
    void aConfigNamingAFileThatIsNotThereYetIsLoadedWhenTheFileAppears() throws Exception {
        // Kubernetes may update the ConfigMap before the Secret it now refers to is mounted.
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Path secrets = Files.createDirectories(workspace.resolve("secrets"));
        Path notYet = secrets.resolve("clients-ca.pem");
        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            replace(config, yaml("").replace(pki.caPem().toString(), notYet.toString()));
            assertThat(log.await("event=reload_failed", "reason=invalid_config")).contains("clients-ca.pem");
        }
        assertThat(running.server().generation()).isEqualTo(1);

        Files.copy(pki.caPem(), notYet);

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(billingStatus()).isEqualTo(403);
    }

    /**
     * An edit naming a file that was there all along, and refused, is tried once: the check kept for a file that
     * appears just after a failed load (above) tried it a second time, and logged and counted the same failure twice.
     */
    @Test
    void aRefusedEditNamingAFileThatWasAlreadyThereIsTriedOnce() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Path elsewhere = Files.createDirectories(workspace.resolve("elsewhere"));
        // a certificate the server key does not belong to, written a while ago
        Path notTheServers = Files.copy(pki.caPem(), elsewhere.resolve("server.pem"));
        Files.setLastModifiedTime(notTheServers, FileTime.from(Instant.now().minus(Duration.ofMinutes(5))));

        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            replace(config, yaml("").replace(pki.serverCertificatePem().toString(), notTheServers.toString()));
            assertThat(log.await("event=reload_failed", "reason=invalid_config")).contains("belongs to another");

            await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(4)).until(() -> log.lines().stream()
                    .filter(line -> line.contains("event=reload_failed")).count() == 1);
        }
        assertThat(admin("GET", "/metrics").body())
                .contains("mtls_proxy_config_reloads_total{reason=\"invalid_config\",result=\"failure\"} 1.0");
        assertThat(running.server().generation()).isEqualTo(1);
    }

    @Test
    void aRequestPipelinedBehindAnAdminReloadIsAnsweredAfterIt() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Files.writeString(config, yaml(""));
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), running.admin().address().getPort())) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write(("POST /admin/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n"
                    + "HEAD /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));

            String all = new String(socket.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);

            assertThat(all).as("the reload's answer first, with its body; the HEAD's without one; then the GET's")
                    .matches("(?s)HTTP/1.1 200 OK\r\n.*?\r\n\r\n\\{.*\"generation\" : 2.*?}\n"
                            + "HTTP/1.1 200 OK\r\n[^{]*?\r\n\r\n"
                            + "HTTP/1.1 200 OK\r\n.*?\r\n\r\nok\n");
        }
    }

    @Test
    void changedReloadSettingsAreLoggedAndAnsweredAsNeedingARestart() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            Files.writeString(config, yaml("").replace("debounce: 200ms", "debounce: 2s"));

            HttpResponse<String> response = admin("POST", "/admin/reload");

            assertThat(response.statusCode()).isEqualTo(200);
            assertThat(new ObjectMapper().readTree(response.body()).get("restartNeeded")).extracting(JsonNode::asText)
                    .containsExactly("reload.debounce: 2s needs a restart to change (running: 200ms)"
                            + " at line 25, column 35");
            assertThat(log.await("event=config_restart_needed")).endsWith("generation=2 problem=\"reload.debounce: 2s"
                    + " needs a restart to change (running: 200ms) at line 25, column 35\"");
        }
    }

    @Test
    void changedWorkersAreLoggedAsNeedingARestartAndTheRestOfTheReloadApplies() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {
            Files.writeString(config, yaml("") + "workers: { threads: 3, cpuAffinity: auto }\n");

            assertThat(admin("POST", "/admin/reload").statusCode()).isEqualTo(200);

            log.await("event=config_restart_needed", "workers.threads");
            assertThat(log.lines()).filteredOn(l -> l.contains("event=config_restart_needed")).containsExactly(
                    "event=config_restart_needed generation=2 problem=\"workers.cpuAffinity: auto needs a restart to"
                            + " change (running: none) at line 26, column 37\"",
                    "event=config_restart_needed generation=2 problem=\"workers.threads: 3 needs a restart to change"
                            + " (running: default) at line 26, column 21\"");
            assertThat(billingStatus()).isEqualTo(403);
            JsonNode shown = new ObjectMapper().readTree(admin("GET", "/admin/config").body());
            assertThat(shown.at("/config/workers/cpuAffinity").asText()).as("as written in YAML").isEqualTo("auto");
        }
    }

    /**
     * A reload applies everything but the settings read at start, and the next reload does not take the previous
     * one's values of those for what runs: the threads started with still run, and still need a restart to change.
     */
    @Test
    void aStartOnlyChangeStillNeedsARestartAfterTheNextReload() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        Files.writeString(config, yaml("") + "workers: { threads: 3 }\n");
        assertThat(admin("POST", "/admin/reload").statusCode()).isEqualTo(200);
        Files.writeString(config, yaml("billing") + "workers: { threads: 3 }\n");

        HttpResponse<String> response = admin("POST", "/admin/reload");

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(new ObjectMapper().readTree(response.body()).get("restartNeeded")).extracting(JsonNode::asText)
                .containsExactly("workers.threads: 3 needs a restart to change (running: default)"
                        + " at line 26, column 21");
        assertThat(billingStatus()).isEqualTo(200);
    }

    /**
     * A reload refused for a restart lists every change that only a restart applies, each at its path and its line
     * and column in the new file, the same in the answer and the log: the moved listener that refused it, a new one,
     * and the changed settings read at start.
     */
    @Test
    void aReloadRefusedForARestartListsEveryChangeThatNeedsOne() throws Exception {
        watch = false;
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("billing"));
        start(config);
        String listener = yaml("").substring(yaml("").indexOf("  - name: main"), yaml("").indexOf("identities:"));
        Files.writeString(config, yaml("")
                .replace("address: 127.0.0.1:0\n    tls", "address: 127.0.0.1:1\n    tls")
                .replace("identities:", listener.replace("name: main", "name: extra") + "identities:")
                + "workers: { threads: 3 }\n");
        List<String> expected = List.of(
                "listeners[0].address: 127.0.0.1:1 needs a restart to change (running: 127.0.0.1:0)"
                        + " at line 5, column 14",
                "listeners[1]: new listener \"extra\" needs a restart at line 9, column 5",
                "workers.threads: 3 needs a restart to change (running: default) at line 31, column 21");
        try (LogCapture log = LogCapture.of(ConfigReloader.class)) {

            HttpResponse<String> response = admin("POST", "/admin/reload");

            assertThat(response.statusCode()).isEqualTo(422);
            JsonNode body = new ObjectMapper().readTree(response.body());
            assertThat(body.get("reason").asText()).isEqualTo("restart_required");
            assertThat(body.get("problems")).extracting(JsonNode::asText).containsExactlyElementsOf(expected);
            assertThat(log.lines()).filteredOn(l -> l.startsWith("event=reload_failed")).containsExactlyElementsOf(
                    expected.stream().map(p -> "event=reload_failed trigger=admin reason=restart_required problem=\""
                            + p.replace('"', '\'') + "\"").toList());
        }
        assertThat(running.server().generation()).isEqualTo(1);
        assertThat(billingStatus()).isEqualTo(200);
    }
}
