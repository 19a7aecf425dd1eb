package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.app.admin.AdminEndpoints;
import dev.mtlsproxy.app.admin.AdminServer;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.testing.TestPki;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Clock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code GET /admin/config} on the admin listener, for the configuration the README documents. */
class AdminConfigTest {

    @TempDir
    Path dir;

    /**
     * A time-boxed grant's {@code expires:} is an instant, which the admin's JSON writer could not write: for any
     * configuration with one, the shipped example's included, the admin listener closed the connection without an
     * answer and logged nothing.
     */
    @Test
    void theShippedExampleIsShownWholeWithItsTimeBoxedGrantAsWritten() throws Exception {
        ProxyConfig config = ConfigLoader.load(ShippedExample.withCertificates(dir, TestPki.create(dir)));
        AdminEndpoints endpoints = new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT),
                () -> true, () -> new AdminEndpoints.ConfigSnapshot(config, 1, "0".repeat(64)), () -> null, null,
                Clock.systemUTC());

        try (AdminServer admin = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints,
                new AdminServer.Counters(() -> { }, () -> { }, () -> { }))) {
            HttpResponse<String> response = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(
                    "http://127.0.0.1:" + admin.address().getPort() + "/admin/config")).build(),
                    HttpResponse.BodyHandlers.ofString());

            assertThat(response.statusCode()).isEqualTo(200);
            JsonNode shown = new ObjectMapper().readTree(response.body());
            assertThat(shown.at("/config/routes/1/name").asText()).isEqualTo("orders-write");
            assertThat(shown.at("/config/routes/1/rules/2/expires").asText()).isEqualTo("2027-06-30T00:00:00Z");
        }
    }
}
