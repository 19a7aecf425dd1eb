package dev.mtlsproxy.app.admin;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.HostPort;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The admin listener's own limits, apart from what its endpoints answer. */
class AdminServerTest {

    private static AdminEndpoints endpoints() {
        return new AdminEndpoints(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), () -> true, () -> null,
                () -> null, null, Clock.systemUTC());
    }

    @Test
    void aConnectionThatSaysNothingIsClosedAfterTheIdleTimeoutAndTheNextOneIsServed() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints(),
                Duration.ofMillis(300));
                Socket idle = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort())) {
            idle.setSoTimeout(10_000);
            long opened = System.nanoTime();

            assertThat(idle.getInputStream().read()).as("closed by the admin listener").isEqualTo(-1);
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).isGreaterThanOrEqualTo(Duration.ofMillis(300));

            try (Socket used = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort())) {
                used.setSoTimeout(10_000);
                used.getOutputStream().write("GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
                        .getBytes(StandardCharsets.US_ASCII));
                InputStream in = used.getInputStream();
                assertThat(new String(in.readAllBytes(), StandardCharsets.US_ASCII)).startsWith("HTTP/1.1 200 OK");
            }
        }
    }
}
