package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Signals that arrive while the proxy is still starting: acted on once it has started, never lost and never the
 * JVM's default (which for SIGHUP is to exit). The handlers are called as the JVM's signal thread would call them;
 * {@link SignalsProcessTest} sends real signals to a real process.
 */
class ProcessSignalsTest {

    static final String ORDERS = SignalsProcessTest.ORDERS;

    @TempDir
    Path workspace;
    TestPki pki;
    TestBackend backend;
    RunCommand.Running running;
    final CompletableFuture<Integer> exited = new CompletableFuture<>();
    final ProcessSignals signals = new ProcessSignals(exited::complete);
    final PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);

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

    private String yaml(String ordersAllow) {
        return SignalsProcessTest.yaml(pki, backend.url(), ordersAllow);
    }

    private int ordersStatus() throws Exception {
        try (MtlsClient client = MtlsClient.connect(running.server().addresses().get(0), pki.root(),
                pki.client(ORDERS))) {
            return client.get("/hello").status();
        }
    }

    @Test
    void aSighupWhileStartingReloadsOnceStarted() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("orders"));
        ProxyConfig loaded = ValidateCommand.load(config, quiet);
        Files.writeString(config, yaml(""));
        signals.hangUp(); // the edit's SIGHUP, while the proxy is still starting with what it loaded

        running = RunCommand.start(config, loaded, quiet);
        assertThat(running.server().generation()).isEqualTo(1);
        signals.started(running);

        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(ordersStatus()).isEqualTo(403);
        assertThat(exited).isNotDone();
    }

    @Test
    void aSigtermWhileStartingDrainsOnceStartedAndExitsZero() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("orders"));
        ProxyConfig loaded = ValidateCommand.load(config, quiet);
        signals.terminate();

        running = RunCommand.start(config, loaded, quiet);
        assertThat(ordersStatus()).as("serving until told it has started").isEqualTo(200);
        signals.started(running);

        assertThat(exited.get(10, TimeUnit.SECONDS)).isZero();
        assertThat(running.server().generation()).isEqualTo(1);
    }

    @Test
    void aSighupReopensTheAccessLogFileThatLogrotateRenamed() throws Exception {
        Path accessLog = workspace.resolve("access.log");
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("orders")
                .replace("accessLog: { enabled: false }", "accessLog: { enabled: true, path: " + accessLog + " }"));
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet);
        signals.started(running);
        assertThat(ordersStatus()).isEqualTo(200);
        await().atMost(Duration.ofSeconds(5)).until(() -> lines(accessLog) == 1);

        Path rotated = Files.move(accessLog, workspace.resolve("access.log.1"));
        signals.hangUp(); // logrotate's postrotate
        await().atMost(Duration.ofSeconds(5)).until(() -> Files.exists(accessLog));
        assertThat(ordersStatus()).isEqualTo(200);

        await().atMost(Duration.ofSeconds(5)).until(() -> lines(accessLog) == 1);
        assertThat(lines(rotated)).isEqualTo(1);
    }

    private static long lines(Path file) throws Exception {
        return Files.exists(file) ? Files.readAllLines(file).size() : -1;
    }

    @Test
    void signalsAfterStartUpActAtOnce() throws Exception {
        Path config = Files.writeString(workspace.resolve("proxy.yaml"), yaml("orders"));
        running = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet);
        signals.started(running);

        Files.writeString(config, yaml(""));
        signals.hangUp();
        await().atMost(Duration.ofSeconds(10)).until(() -> running.server().generation() == 2);
        assertThat(exited).isNotDone();
        try (LogCapture shutdown = LogCapture.of(RunCommand.class);
                LogCapture drain = LogCapture.of(dev.mtlsproxy.core.proxy.ProxyServer.class)) {
            signals.terminate();
            assertThat(exited.get(10, TimeUnit.SECONDS)).isZero();

            // durations as the config writes them, not Java's PT1S
            assertThat(shutdown.lines()).anyMatch(line -> line.contains(
                    "event=shutdown_started drainDelay=1s drainTimeout=15s"));
            assertThat(drain.lines()).anyMatch(line -> line.matches(".*event=draining connections=\\d+ timeout=15s"));
        }
    }
}
