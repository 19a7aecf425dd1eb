package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.TestPki;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code workers.cpuAffinity} in a real process that cannot load the native library pinning needs (as on a noexec
 * /tmp, where JNA cannot unpack it): the start fails with one clear line and exit code 1. It used to end in an
 * uncaught UnsatisfiedLinkError and its stack trace, past the clean-up of a failed start.
 */
@EnabledOnOs(OS.LINUX)
class CpuAffinityProcessTest {

    @TempDir
    Path dir;

    @Test
    void withoutItsNativeLibraryPinningStopsTheStartWithAClearError() throws Exception {
        TestPki pki = TestPki.create(Files.createDirectories(dir.resolve("pki")));
        Path config = Files.writeString(dir.resolve("pinned.yaml"), """
                trustAnchors:
                  clients: { caBundle: %s }
                listeners:
                  - address: 127.0.0.1:0
                    tls: { certificate: %s, privateKey: %s }
                identities:
                  orders: { spiffeId: "spiffe://td/orders" }
                routes:
                  - { name: orders, pathPrefix: /orders, backend: shop, allow: [orders] }
                backends:
                  shop: { url: "http://127.0.0.1:9" }
                admin: { address: 127.0.0.1:0 }
                accessLog: { enabled: false }
                reload: { watch: false }
                workers: { cpuAffinity: auto }
                """.formatted(pki.caPem(), pki.serverCertificatePem(), pki.serverKeyPem()));
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
}
