package dev.mtlsproxy.core.backend;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.config.KeyExchangeGroup;
import dev.mtlsproxy.config.TlsVersion;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Which reloads make an endpoint's health check ask another question (its first result then decides) and which only
 * change when or how often it is asked (the verdict carries over, counted by the new thresholds). The checks
 * themselves, against real backends, are in HealthCheckThresholdsTest; here the backends are only built, with real
 * TLS files, and nothing connects.
 */
class HealthQuestionTest {

    static final HealthCheckConfig CHECK = new HealthCheckConfig("/health", Duration.ofSeconds(10),
            Duration.ofSeconds(2), 2, 3);

    @TempDir
    Path dir;
    TestPki pki;
    BackendConfig running;

    @BeforeEach
    void runningConfig() {
        pki = TestPki.create(dir);
        TestPki.Issued proxy = pki.proxyClient(TestPki.SERVER_SPIFFE_ID);
        running = BackendConfig.of(List.of(URI.create("https://localhost:8443")),
                BackendTlsConfig.trusting(pki.caPem()).withClientCertificate(proxy.certificate(), proxy.privateKey()))
                .withHealthCheck(CHECK);
    }

    private HealthQuestion question(BackendConfig config) throws Exception {
        return Backend.build("shop", config).endpoints().get(0).healthQuestion();
    }

    private boolean asksTheSame(BackendConfig reloaded) throws Exception {
        return question(reloaded).equals(question(running));
    }

    private BackendConfig withTls(UnaryOperator<BackendTlsConfig> change) {
        return BackendConfig.of(running.endpointUrls(), change.apply(running.tls())).withHealthCheck(CHECK);
    }

    @Test
    void anotherPathHostOrServerNameIsAnotherQuestion() throws Exception {
        assertThat(asksTheSame(running.withHealthCheck(CHECK.withPath("/ready")))).as("path").isFalse();
        assertThat(asksTheSame(withTls(t -> t.withServerName("shop.internal")))).as("serverName").isFalse();
        assertThat(question(withTls(t -> t.withServerName("shop.internal"))))
                .isEqualTo(new HealthQuestion("/health", "shop.internal:8443", "shop.internal",
                        running.tls()));
    }

    @Test
    void aServerNameSpelledAsTheUrlsHostAsksTheSame() throws Exception {
        assertThat(asksTheSame(withTls(t -> t.withServerName("localhost")))).isTrue();
    }

    @Test
    void everyOtherTlsSettingIsPartOfTheQuestion() throws Exception {
        Path otherCa = pki.writeCa("other-ca.pem", TestPki.newRoot("another backend CA"));
        X509Bundle otherIdentity = TestPki.clientOf(pki.root(), "spiffe://proxy.test/another-proxy");
        Path otherCertificate = pki.write("another-proxy.pem", otherIdentity.getCertificatePEM());
        Path otherKey = pki.write("another-proxy.key", otherIdentity.getPrivateKeyPEM());
        List<BackendTlsConfig> changes = List.of(
                new BackendTlsConfig(List.of(otherCa), null, null, null, running.tls().certificate(),
                        running.tls().privateKey(), null, null),
                running.tls().withSpiffeId("spiffe://backend.test/shop", false),
                running.tls().withClientCertificate(otherCertificate, otherKey),
                new BackendTlsConfig(running.tls().serverCAs(), null, null, null, running.tls().certificate(),
                        running.tls().privateKey(), TlsVersion.TLS_1_3, null),
                new BackendTlsConfig(running.tls().serverCAs(), null, null, null, running.tls().certificate(),
                        running.tls().privateKey(), null, List.of(KeyExchangeGroup.X25519)));
        for (BackendTlsConfig changed : changes) {
            assertThat(asksTheSame(withTls(t -> changed))).as("%s", changed).isFalse();
        }
    }

    @Test
    void theScheduleTimeoutsThresholdsAndPoolAskTheSame() throws Exception {
        assertThat(asksTheSame(running.withHealthCheck(new HealthCheckConfig("/health", Duration.ofSeconds(1),
                Duration.ofMillis(200), 1, 1)))).as("interval, timeout, thresholds").isTrue();
        assertThat(asksTheSame(running.withTimeouts(Duration.ofMillis(100), Duration.ofSeconds(1),
                Duration.ofSeconds(1)))).as("connect, response and body timeouts").isTrue();
        assertThat(asksTheSame(running.withCoolDown(Duration.ofMinutes(1)))).as("coolDown").isTrue();
    }

    @Test
    void aPlainHttpEndpointsQuestionIsThePathAndHost() throws Exception {
        BackendConfig http = BackendConfig.of(List.of(URI.create("http://LocalHost:8080")), null)
                .withHealthCheck(CHECK);

        assertThat(question(http)).isEqualTo(new HealthQuestion("/health", "localhost:8080", null, null));
    }
}
