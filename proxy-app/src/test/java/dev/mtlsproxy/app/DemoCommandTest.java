package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.app.demo.DemoPki;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code mtls-proxy demo} as the README promises it: it starts, prints three curl commands, and each one behaves
 * as printed when run by the real curl (installed by .ci/run).
 */
class DemoCommandTest {

    @RegisterExtension
    final LogCapture log = LogCapture.of(DemoCommand.class);

    @TempDir
    Path workspace;

    @Test
    void theThreePrintedCurlCommandsBehaveAsPrinted() throws Exception {
        Path config = demoConfigOnFreePorts(workspace, yaml -> yaml);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();

        try (DemoCommand.Demo demo = DemoCommand.start(config, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8))) {
            int port = demo.proxy().server().addresses().get(0).getPort();
            String printed = out.toString(StandardCharsets.UTF_8);
            assertThat(printed).contains("https://localhost:" + port + "/hello");
            assertThat(printed).contains("NOT FOR PRODUCTION");
            assertThat(workspace.resolve("demo/ca.pem")).exists();
            List<String> curls = printed.lines().map(String::trim).filter(l -> l.startsWith("curl ")).toList();
            assertThat(curls).hasSize(3);

            Curl allowed = curl(curls.get(0));
            assertThat(allowed.exit).isZero();
            assertThat(allowed.output).startsWith("HTTP/1.1 200").contains("URI=spiffe://demo.local/orders");

            Curl denied = curl(curls.get(1));
            assertThat(denied.exit).isZero();
            assertThat(denied.output).startsWith("HTTP/1.1 403");

            Curl anonymous = curl(curls.get(2));
            assertThat(anonymous.exit).as("curl fails on the refused handshake").isNotZero();
            assertThat(anonymous.output).doesNotContain("HTTP/1.1");
        }
    }

    @Test
    void demoCheckMakesTheThreeRequestsItselfAndExitsZeroWhenTheyBehave() throws Exception {
        Path config = demoConfigOnFreePorts(workspace.resolve("ok"), yaml -> yaml);
        ByteArrayOutputStream out = new ByteArrayOutputStream();

        int exit = Main.run(new String[] {"demo", "--config", config.toString(), "--check"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(OutputStream.nullOutputStream()));

        assertThat(out.toString(StandardCharsets.UTF_8).lines().filter(l -> l.startsWith("check: ")))
                .containsExactly("check: allowed client: 200", "check: denied client: 403",
                        "check: no client certificate: refused", "check: passed");
        assertThat(exit).isZero();
        // It told the reader to try the requests from another terminal and to stop it, while it did both itself.
        assertThat(out.toString(StandardCharsets.UTF_8))
                .contains(" Echo backend and proxy are running. --check makes these three requests now, then stops:")
                .doesNotContain("from another terminal").doesNotContain("Ctrl-C");
    }

    /** The address taken is named as the config writes it: the url, not a host:port the file nowhere has. */
    @Test
    void aBackendAddressInUseIsNamedAsTheConfigWritesIt() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            String url = "http://127.0.0.1:" + taken.getLocalPort();
            Path config = demoConfigOnFreePorts(workspace.resolve("taken"), yaml -> yaml.replace(
                    "http://127.0.0.1:0", url));
            ByteArrayOutputStream err = new ByteArrayOutputStream();

            int exit = Main.run(new String[] {"demo", "--config", config.toString(), "--check"},
                    new PrintStream(OutputStream.nullOutputStream()), new PrintStream(err, true, StandardCharsets.UTF_8));

            assertThat(exit).isEqualTo(1);
            assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("demo failed: backends.echo.url: \"" + url
                    + "\" (expected: an address this process can bind) - ").contains("is a demo already running?");
        }
    }

    @Test
    void demoCheckFailsWhenTheAllowedClientIsRefused() throws Exception {
        Path config = demoConfigOnFreePorts(workspace.resolve("broken"), yaml -> yaml.replace("allow: [orders]",
                "allow: []"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();

        int exit = Main.run(new String[] {"demo", "--config", config.toString(), "--check"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(OutputStream.nullOutputStream()));

        assertThat(out.toString(StandardCharsets.UTF_8)).contains("check: allowed client: 403 (expected 200)",
                "check: FAILED");
        assertThat(exit).isEqualTo(1);
    }

    /**
     * The check proves the proxy serves the demo's certificate, so it trusts the demo CA and nothing else: not the
     * JVM's default trust store. Here the proxy serves a certificate from another CA, one the JVM's default store
     * trusts; a check that fell back on the defaults would see 200 and 403 through it.
     */
    @Test
    void demoCheckTrustsTheDemoCaOnlyNotTheJvmDefaultTrustStore() throws Exception {
        Path root = workspace.resolve("other-ca");
        DemoPki other = DemoPki.ensure(root.resolve("other"), Clock.systemUTC());
        Path config = demoConfigOnFreePorts(root, yaml -> yaml
                .replace("../demo/server.pem", other.serverCertificate().toString())
                .replace("../demo/server.key", other.serverKey().toString()));
        Path trustStore = root.resolve("default-truststore.p12");
        KeyStore defaults = KeyStore.getInstance("PKCS12");
        defaults.load(null, null);
        defaults.setCertificateEntry("other-ca", (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(Files.readAllBytes(other.caCertificate()))));
        try (OutputStream file = Files.newOutputStream(trustStore)) {
            defaults.store(file, "changeit".toCharArray());
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();

        int exit;
        // The JVM's default trust store is a system property by design; tests in this JVM run one at a time, and
        // the previous values are put back.
        Map<String, String> previous = new HashMap<>();
        Map<String, String> jvmDefaults = Map.of("javax.net.ssl.trustStore", trustStore.toString(),
                "javax.net.ssl.trustStoreType", "PKCS12", "javax.net.ssl.trustStorePassword", "changeit");
        jvmDefaults.forEach((key, value) -> previous.put(key, System.setProperty(key, value)));
        try {
            exit = Main.run(new String[] {"demo", "--config", config.toString(), "--check"},
                    new PrintStream(out, true, StandardCharsets.UTF_8),
                    new PrintStream(OutputStream.nullOutputStream()));
        } finally {
            previous.forEach((key, value) -> {
                if (value == null) {
                    System.clearProperty(key);
                } else {
                    System.setProperty(key, value);
                }
            });
        }

        assertThat(out.toString(StandardCharsets.UTF_8).lines().filter(l -> l.startsWith("check: ")))
                .containsExactly("check: allowed client: proxy certificate rejected (expected 200)",
                        "check: denied client: proxy certificate rejected (expected 403)",
                        "check: no client certificate: proxy certificate rejected (expected refused)",
                        "check: FAILED");
        assertThat(exit).isEqualTo(1);
    }

    /**
     * curl checks that the proxy's certificate is for localhost, the name in its URL; the check did not, and
     * passed with a certificate from the demo CA for any name, where the curl commands it imitates fail. Here
     * the demo directory holds a complete demo set (CA, server, both clients: reused as it is) whose server
     * certificate is for another name.
     */
    @Test
    void demoCheckFailsWhenTheProxysCertificateIsFromTheDemoCaButForAnotherName() throws Exception {
        Path root = workspace.resolve("other-name");
        TestPki pki = TestPki.create(Files.createDirectories(root.resolve("demo")));
        // DemoPki reuses a set valid for another day at least; TestPki's leaves live 12 hours.
        Instant twoDays = Instant.now().plus(Duration.ofHours(36));
        pki.backendServer("server", b -> b.addSanDnsName("elsewhere.example").notAfter(twoDays));
        writeClient(pki, "client-allowed", "spiffe://demo.local/orders", twoDays);
        writeClient(pki, "client-denied", "spiffe://demo.local/intruder", twoDays);
        Path config = demoConfigOnFreePorts(root, yaml -> yaml);
        ByteArrayOutputStream out = new ByteArrayOutputStream();

        int exit = Main.run(new String[] {"demo", "--config", config.toString(), "--check"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(OutputStream.nullOutputStream()));

        assertThat(out.toString(StandardCharsets.UTF_8)).as("the set was reused, not minted again")
                .contains("Certificates (reused)");
        assertThat(out.toString(StandardCharsets.UTF_8).lines().filter(l -> l.startsWith("check: ")))
                .containsExactly("check: allowed client: proxy certificate rejected (expected 200)",
                        "check: denied client: proxy certificate rejected (expected 403)",
                        "check: no client certificate: proxy certificate rejected (expected refused)",
                        "check: FAILED");
        assertThat(exit).isEqualTo(1);
    }

    /**
     * README: "a file rewritten while the proxy starts is loaded rather than taken as the baseline". The demo starts
     * the proxy as run does, so an edit landing between reading the config and watching it is loaded too.
     */
    @Test
    void anEditWrittenWhileTheDemoStartsIsLoadedOnceItRuns() throws Exception {
        Path config = demoConfigOnFreePorts(workspace.resolve("edited"), yaml -> yaml);
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

        try (DemoCommand.Demo demo = DemoCommand.start(config, quiet, quiet, file -> {
            var read = ValidateCommand.load(file, quiet);
            try {
                Files.writeString(file, Files.readString(file).replace("allow: [orders]", "allow: []"));
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            return read;
        })) {
            assertThat(demo.proxy().server().config().routes().get(0).allow()).containsExactly("orders");

            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                assertThat(demo.proxy().server().generation()).isEqualTo(2);
                assertThat(demo.proxy().server().config().routes().get(0).allow()).isEmpty();
            });
        }
    }

    /**
     * A failure nobody planned for (here the demo's PKI folder is a file) used to be one "demo failed: " line with
     * the exception's toString, its stack trace lost; run logs such a failure with it, and so does demo now.
     */
    @Test
    void aDemoFailureNobodyForesawIsLoggedWithItsStackTrace() throws Exception {
        Path root = workspace.resolve("blocked");
        Path config = demoConfigOnFreePorts(root, yaml -> yaml);
        Files.writeString(root.resolve("demo"), "a file where the demo's PKI folder goes\n");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

        int exitCode = new DemoCommand(quiet, new PrintStream(err, true, StandardCharsets.UTF_8)).run(config, true);

        assertThat(exitCode).isEqualTo(1);
        String stderr = err.toString(StandardCharsets.UTF_8);
        assertThat(stderr).startsWith("demo failed: java.nio.file.")
                .endsWith(" (the stack trace is logged as event=start_failed)" + System.lineSeparator());
        String line = log.await("event=start_failed");
        assertThat(line).startsWith("event=start_failed cause=\"java.nio.file.");
        assertThat(log.thrownWith(line)).startsWith("java.nio.file.");
    }

    @Test
    void anInvalidDemoConfigIsOneLineWithoutAStackTrace() throws Exception {
        Path config = demoConfigOnFreePorts(workspace.resolve("invalid"), yaml -> yaml + "\nnoSuchSetting: 1\n");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

        int exitCode = new DemoCommand(quiet, new PrintStream(err, true, StandardCharsets.UTF_8)).run(config, true);

        assertThat(exitCode).isEqualTo(1);
        assertThat(err.toString(StandardCharsets.UTF_8)).contains("noSuchSetting")
                .endsWith("demo failed: the demo config is invalid: " + config + System.lineSeparator());
        assertThat(log.lines()).noneMatch(l -> l.contains("event=start_failed"));
    }

    private static void writeClient(TestPki pki, String name, String spiffeId, Instant notAfter) {
        X509Bundle client = TestPki.issue(pki.root(), spiffeId, b -> b.notAfter(notAfter));
        pki.write(name + ".pem", client.getCertificatePEM());
        pki.write(name + ".key", client.getPrivateKeyPEM());
    }

    /** The shipped demo config, with ports 0 so the test never collides with anything on the machine. */
    private static Path demoConfigOnFreePorts(Path root, UnaryOperator<String> edit) throws Exception {
        Path configDir = Files.createDirectories(root.resolve("config"));
        String demoYaml = Files.readString(Path.of("..", "config", "demo.yaml"))
                .replace("127.0.0.1:8443", "127.0.0.1:0")
                .replace("http://127.0.0.1:18080", "http://127.0.0.1:0")
                .replace("127.0.0.1:9901", "127.0.0.1:0");
        return Files.writeString(configDir.resolve("demo.yaml"), edit.apply(demoYaml));
    }

    private record Curl(int exit, String output) {
    }

    private static Curl curl(String command) throws Exception {
        Process p = new ProcessBuilder("bash", "-c", command.replace("curl ", "curl -sS --max-time 10 "))
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
        return new Curl(p.exitValue(), output);
    }
}
