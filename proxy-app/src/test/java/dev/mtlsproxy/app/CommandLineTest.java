package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.TestPki;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** The command line as a user meets it: exit codes and what is printed. */
class CommandLineTest {

    @TempDir
    Path dir;

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... args) {
        return Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private String stderr() {
        return err.toString(StandardCharsets.UTF_8);
    }

    @RegisterExtension
    final LogCapture log = LogCapture.of(RunCommand.class);

    private void assertNoStackTraceLogged() {
        assertThat(log.lines()).as("an expected failure is one line on stderr, no logged stack trace")
                .noneMatch(line -> line.contains("event=start_failed"));
    }

    @Test
    void validateListsEveryProblemWithItsPathAndExits1() throws Exception {
        Path config = dir.resolve("broken.yaml");
        Files.writeString(config, """
                trustAnchors: {}
                listeners:
                  - address: 127.0.0.1:99999
                    tls:
                      certificate: missing.pem
                      privateKey: missing.key
                    idleTimout: 5s
                identities:
                  orders: { spiffeId: "spiffe://td/orders" }
                routes:
                  - name: a
                    backend: nowhere
                    allow: [billing]
                backends:
                  shop: { url: "http://127.0.0.1:9000", connectTimeout: 5 seconds }
                """);

        assertThat(run("validate", "--config", config.toString())).isEqualTo(1);

        assertThat(stderr()).contains(config + ": 8 problems")
                .contains("backends.shop.connectTimeout: \"5 seconds\" (expected: a duration like 500ms, 10s, 5m, 1h)")
                .contains("listeners[0].address: \"127.0.0.1:99999\"")
                .contains("listeners[0].idleTimout: unknown key")
                .contains("listeners[0].tls.certificate: " + dir.resolve("missing.pem") + " (expected: a readable PEM file) - no such file")
                .contains("trustAnchors: {} (expected: at least one trust anchor with a caBundle; client certificates are always required)")
                .contains("routes[0].allow[0]: \"billing\" (expected: a name under identities:, known: orders)")
                .contains("routes[0].backend: \"nowhere\" (expected: a name under backends:, known: shop)")
                .contains("at line 3, column");
    }

    @Test
    void runRefusesToStartOnAnInvalidConfig() throws Exception {
        Path config = dir.resolve("empty.yaml");
        Files.writeString(config, "listeners: []\n");

        assertThat(run("run", "--config", config.toString())).isEqualTo(1);
        assertThat(stderr()).contains("listeners").contains("not starting: fix the problems above");
        assertNoStackTraceLogged();
    }

    @Test
    void aPinnedCpuThisProcessMayNotUseStopsTheStartAndSaysWhich() throws Exception {
        Path config = pinnedConfig("\"1023\"");

        assertThat(run("run", "--config", config.toString())).isEqualTo(1);

        assertThat(stderr()).startsWith("not starting: workers.cpuAffinity: CPU 1023 is not one this process may run"
                + " on (it may run on ");
        assertNoStackTraceLogged();
    }

    /**
     * In a real process that cannot load the native library pinning needs (as on a noexec /tmp, where JNA cannot
     * unpack it), the start fails with one line and exit code 1. It used to end in an uncaught UnsatisfiedLinkError
     * and its stack trace, past the clean-up of a failed start.
     */
    @Test
    @EnabledOnOs(OS.LINUX)
    void withoutItsNativeLibraryPinningStopsTheStartWithOneLine() throws Exception {
        Path config = pinnedConfig("auto");
        Path stderr = dir.resolve("stderr.txt");
        // JNA may neither unpack its library nor take one from the system: loading it fails as on a noexec /tmp.
        Process process = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Djna.nounpack=true", "-Djna.nosys=true", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "run", "--config", config.toString())
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(stderr.toFile())
                .start();
        try {
            assertThat(process.waitFor(30, TimeUnit.SECONDS)).as("the process exits").isTrue();
            assertThat(process.exitValue()).isEqualTo(1);
            assertThat(Files.readString(stderr, StandardCharsets.UTF_8)).contains(
                    "not starting: workers.cpuAffinity: cannot load the native library that pins threads (")
                    .doesNotContain("Exception in thread");
        } finally {
            process.destroyForcibly();
        }
    }

    /** A valid config whose event loops are pinned as given. */
    private Path pinnedConfig(String cpuAffinity) throws Exception {
        return config(List.of("127.0.0.1:0"), "127.0.0.1:0", cpuAffinity);
    }

    /** A valid config with these listener addresses (named l0, l1, ...) and admin address. */
    private Path config(List<String> listeners, String admin, String cpuAffinity) throws Exception {
        TestPki pki = TestPki.create(Files.createDirectories(dir.resolve("pki")));
        StringBuilder listenersYaml = new StringBuilder();
        for (int i = 0; i < listeners.size(); i++) {
            listenersYaml.append("""
                      - name: l%d
                        address: %s
                        tls: { certificate: %s, privateKey: %s }
                    """.formatted(i, listeners.get(i), pki.serverCertificatePem(), pki.serverKeyPem()));
        }
        return Files.writeString(dir.resolve("proxy.yaml"), """
                trustAnchors:
                  clients: { caBundle: %s }
                listeners:
                %s
                identities:
                  orders: { spiffeId: "spiffe://td/orders" }
                routes:
                  - { name: orders, pathPrefix: /orders, backend: shop, allow: [orders] }
                backends:
                  shop: { url: "http://127.0.0.1:9" }
                admin: { address: "%s" }
                accessLog: { enabled: false }
                reload: { watch: false }
                workers: { cpuAffinity: %s }
                """.formatted(pki.caPem(), listenersYaml.toString().stripTrailing(), admin, cpuAffinity));
    }

    /**
     * The operating system's "Address already in use" named no address, and a failed bind of a second listener
     * skipped the clean-up of the first one and of the event loops (non-daemon threads that outlived the failure).
     */
    @Test
    void anAddressThatCannotBeBoundStopsTheStartNamingTheSettingAndLeavesNothingRunning() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            String busy = "127.0.0.1:" + taken.getLocalPort();
            Set<Thread> before = Thread.getAllStackTraces().keySet();

            assertThat(run("run", "--config", config(List.of("127.0.0.1:0", busy), "127.0.0.1:0", "none").toString()))
                    .isEqualTo(1);

            assertThat(stderr()).startsWith("not starting: listeners[1].address: \"" + busy
                    + "\" (expected: an address this process can bind) - ");
            await().pollInSameThread().atMost(Duration.ofSeconds(10))
                    .untilAsserted(() -> assertThat(Thread.getAllStackTraces().keySet())
                    .filteredOn(t -> !before.contains(t) && !t.isDaemon() && t.isAlive())
                    .as("threads the failed start left running").isEmpty());

            err.reset();
            assertThat(run("run", "--config", config(List.of("127.0.0.1:0"), busy, "none").toString())).isEqualTo(1);

            assertThat(stderr()).startsWith("not starting: admin.address: \"" + busy
                    + "\" (expected: an address this process can bind) - ");
            assertNoStackTraceLogged();
        }
    }

    /**
     * A failure nobody planned for (here a file system without a watch service, which the JDK allows) used to end the
     * start as "not starting: " and the exception's toString: where it came from was lost with its stack trace.
     */
    @Test
    void aStartFailureNobodyForesawIsLoggedWithItsStackTrace() throws Exception {
        Path config = pinnedConfig("none");
        Files.writeString(config, Files.readString(config).replace("reload: { watch: false }", "reload: { watch: true }"));
        ConfigReloader.WatchServices unsupported = () -> {
            throw new UnsupportedOperationException("no \"watch\" service on this file system");
        };

        int exitCode = new RunCommand(new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8), null, unsupported).run(config);

        assertThat(exitCode).isEqualTo(1);
        assertThat(stderr()).isEqualTo("not starting: java.lang.UnsupportedOperationException: no \"watch\" service"
                + " on this file system (the stack trace is logged as event=start_failed)" + System.lineSeparator());
        String line = log.await("event=start_failed");
        assertThat(line).isEqualTo("event=start_failed cause=\"java.lang.UnsupportedOperationException: no 'watch'"
                + " service on this file system\"");
        assertThat(log.thrownWith(line)).isEqualTo(UnsupportedOperationException.class.getName());
    }

    @Test
    void aMissingConfigOptionIsAUsageError() {
        assertThat(run("validate")).isEqualTo(2);
        assertThat(stderr()).contains("missing --config FILE").contains("usage: mtls-proxy");
    }

    private String stdout() {
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    void helpAfterAnyCommandPrintsTheUsageAndExits0() {
        for (String command : new String[] {"run", "validate", "explain", "test", "demo", "health"}) {
            out.reset();
            assertThat(run(command, "--help")).as(command + " --help").isZero();
            assertThat(stdout()).as(command + " --help").startsWith("usage: mtls-proxy COMMAND [options]")
                    .contains("exit codes:")
                    // as the README's table has it: run bare, it exits 2 too
                    .contains("  2  usage error, nothing was run: no command, an unknown command or option,");
        }
        out.reset();
        assertThat(run("validate", "-h")).isZero();
        assertThat(stdout()).startsWith("usage: mtls-proxy");
        assertThat(stderr()).isEmpty();
    }

    /** A CI step {@code validate a.yaml b.yaml} used to pass on a valid a.yaml without ever reading b.yaml. */
    @Test
    void aSecondConfigFileIsAUsageErrorNotIgnored() throws Exception {
        Path valid = pinnedConfig("none");
        Path broken = Files.writeString(dir.resolve("broken.yaml"), "listeners: []\n");

        assertThat(run("validate", valid.toString(), broken.toString())).isEqualTo(2);

        assertThat(stderr()).startsWith("validate: unexpected argument: " + broken + "\n");
        assertThat(stdout()).doesNotContain("valid");
    }

    /** {@code demo --admin 127.0.0.1:9902} used to start the demo on the admin port of its config, silently. */
    @Test
    void anOptionTheCommandDoesNotTakeIsAUsageErrorNotIgnored() {
        assertThat(run("demo", "--admin", "127.0.0.1:9902")).isEqualTo(2);
        assertThat(stderr()).startsWith("demo does not take --admin\n");

        err.reset();
        assertThat(run("health", "--config", "x.yaml")).isEqualTo(2);
        assertThat(stderr()).startsWith("health does not take --config\n");

        err.reset();
        assertThat(run("validate", "--frobnicate")).isEqualTo(2);
        assertThat(stderr()).startsWith("validate: unknown option: --frobnicate\n");
    }

    @Test
    void healthTakesOnlyAnAddressWithAPortAndSaysWhyItIsNotReady() {
        assertThat(run("health", "--admin", "localhost")).as("no port: a typo, not a proxy that is down")
                .isEqualTo(2);
        assertThat(stderr()).startsWith("--admin: \"localhost\" (expected: host:port, with IPv6 as [::1]:8443)");

        err.reset();
        assertThat(run("health", "--admin=127.0.0.1:1")).isEqualTo(1);
        assertThat(stderr()).isEqualTo("not ready: no answer from http://127.0.0.1:1/readyz (cannot connect; is the"
                + " proxy running with this admin.address?)\n");
    }

    @Test
    void anUnknownCommandIsAUsageError() {
        assertThat(run("serve")).isEqualTo(2);
        assertThat(stderr()).contains("unknown command: serve");
    }

    /** Run bare, the usage used to go to stdout with exit 2: a usage error, but printed where output goes. */
    @Test
    void noCommandAtAllIsAUsageErrorOnStderr() {
        assertThat(run()).isEqualTo(2);

        assertThat(stdout()).isEmpty();
        assertThat(stderr()).startsWith("missing command\nusage: mtls-proxy COMMAND [options]").contains("exit codes:");
    }

    @Test
    void helpAsACommandWordOrAnOptionPrintsTheUsageOnStdout() {
        for (String help : new String[] {"help", "--help", "-h"}) {
            out.reset();
            assertThat(run(help)).as(help).isZero();
            assertThat(stdout()).as(help).isEqualTo(Main.USAGE);
        }
        assertThat(stderr()).isEmpty();
    }

    /** {@code help} worked but was not in the usage; every word the command line takes is now, and nothing else. */
    @Test
    void theUsageListsEveryCommandTheCommandLineTakes() {
        Set<String> listed = Main.USAGE.lines()
                .dropWhile(line -> !line.equals("commands:")).skip(1).takeWhile(line -> !line.isBlank())
                .filter(line -> line.matches("  [a-z].*"))
                .map(line -> line.strip().split(" ")[0])
                .collect(java.util.stream.Collectors.toSet());
        Set<String> taken = new java.util.HashSet<>(Options.commands());
        taken.add("help");

        assertThat(listed).isEqualTo(taken);
        for (String command : taken) {
            err.reset();
            run(command, "--frobnicate");
            assertThat(stderr()).as(command).doesNotStartWith("unknown command");
        }
    }

    @Test
    void versionPrintsTheBuildsVersionAndCommitThenTheJavaRuntime() {
        for (String version : new String[] {"--version", "version"}) {
            out.reset();
            assertThat(run(version)).as(version).isZero();

            List<String> lines = stdout().lines().toList();
            assertThat(lines).as(version).hasSize(2);
            assertThat(lines.get(0)).as(version)
                    .isEqualTo("mtls-proxy " + System.getProperty("mtlsproxy.test.version") + " (commit "
                            + BuildInfo.current().revision() + ")");
            assertThat(lines.get(1)).as(version).startsWith("Java " + Runtime.version() + " (");
        }
        assertThat(stderr()).isEmpty();
    }

    /**
     * What the build wrote down: the commit of the clone it ran in (git's own abbreviation of HEAD), or what
     * {@code -Dmtlsproxy.revision} named. A commit may land while the build runs, so HEAD at test time is not
     * necessarily what the build saw: any commit HEAD pointed to since the build started (git's reflog says when HEAD
     * moved) is what it may have recorded. A revision older than that (a stale file from an earlier build), "unknown"
     * or another repository's commit still fails.
     */
    @Test
    void theBuildRecordsTheCommitItWasMadeFrom() throws Exception {
        String revision = BuildInfo.current().revision();
        String requested = System.getProperty("mtlsproxy.revision");
        if (requested != null && !requested.isEmpty()) {
            assertThat(revision).isEqualTo(requested);
            return;
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(git("rev-parse", "HEAD") != null,
                "built outside a git clone: revision " + revision);
        assertThat(revision).matches("[0-9a-f]{12,40}(-dirty)?");
        String commit = revision.replaceFirst("-dirty$", "");
        String started = System.getProperty("mtlsproxy.test.buildStarted");
        assertThat(headsSince(started)).as("revision %s among the commits HEAD pointed to since the build started (%s)",
                revision, started).anyMatch(head -> head.startsWith(commit));
    }

    /**
     * The commits HEAD pointed to from {@code started} (an ISO instant) until now, newest first, from git's reflog;
     * just HEAD when there is no reflog or no start time (a run from an IDE, not from the build).
     */
    private static List<String> headsSince(String started) throws Exception {
        List<String> heads = new ArrayList<>();
        List<String> moves = started == null ? null : git("log", "-g", "--format=%H %gd", "--date=unix", "HEAD");
        if (moves != null) {
            long since = Instant.parse(started).getEpochSecond();
            for (String move : moves) { // "<commit> HEAD@{<unix time>}": HEAD moved to <commit> then
                heads.add(move.substring(0, move.indexOf(' ')));
                long at = Long.parseLong(move.substring(move.indexOf('{') + 1, move.indexOf('}')));
                if (at <= since) {
                    break; // where HEAD was when the build started; older ones the build never saw
                }
            }
        }
        if (heads.isEmpty()) {
            heads.addAll(git("rev-parse", "HEAD"));
        }
        return heads;
    }

    /** The lines git prints, run on this module's repository; null without one or without git. */
    private static List<String> git(String... arguments) throws Exception {
        if (!Files.exists(Path.of("..", ".git"))) {
            return null;
        }
        List<String> command = new ArrayList<>(List.of("git", "--git-dir=" + Path.of("..", ".git")));
        command.addAll(List.of(arguments));
        Process git;
        try {
            git = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        } catch (java.io.IOException e) {
            return null; // no git here
        }
        String out = new String(git.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        return git.waitFor() == 0 && !out.isEmpty() ? List.of(out.split("\n")) : null;
    }

    @Test
    void versionTakesNoArguments() {
        assertThat(run("version", "extra")).isEqualTo(2);
        assertThat(stderr()).startsWith("version: unexpected argument: extra\n");
        assertThat(stdout()).isEmpty();
    }
}
