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

    /** One request on its own connection, as written; the whole answer, up to the server's close. */
    private static String exchange(AdminServer server, String request) throws Exception {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), server.address().getPort())) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
        }
    }

    @Test
    void aMethodAPathDoesNotTakeIs405WithTheMethodsItTakesAndAnUnknownPathIs404WhateverTheMethod()
            throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints())) {
            for (String method : new String[] {"POST", "PUT", "DELETE", "OPTIONS"}) {
                assertThat(exchange(server, method + " /healthz HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n"
                        + "Connection: close\r\n\r\n"))
                        .as(method).startsWith("HTTP/1.1 405 Method Not Allowed\r\n").contains("\r\nallow: GET, HEAD\r\n");
            }
            assertThat(exchange(server, "POST /nowhere HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n"
                    + "Connection: close\r\n\r\n")).startsWith("HTTP/1.1 404 Not Found\r\n");
        }
    }

    /**
     * After a malformed request the codec discards whatever follows on the connection: keeping it open left the
     * client waiting for the idle timeout with nothing to be answered.
     */
    @Test
    void aMalformedRequestIsAnswered400AndTheConnectionClosed() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints())) {
            String oversizedHead = "GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Big: " + "a".repeat(20_000)
                    + "\r\n\r\n";
            String bothFramings = "POST /healthz HTTP/1.1\r\nHost: admin\r\nContent-Length: 5\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

            for (String request : new String[] {oversizedHead, bothFramings}) {
                String answer = exchange(server, request);

                assertThat(answer).startsWith("HTTP/1.1 400 Bad Request\r\n").contains("\r\nconnection: close\r\n")
                        .endsWith("bad request\n");
            }
        }
    }

    @Test
    void anAbsoluteFormTargetIsServedLikeItsPath() throws Exception {
        try (AdminServer server = AdminServer.start(HostPort.parse("127.0.0.1:0"), endpoints())) {
            assertThat(exchange(server, "GET http://admin/healthz?probe=1 HTTP/1.1\r\nHost: admin\r\n"
                    + "Connection: close\r\n\r\n")).startsWith("HTTP/1.1 200 OK\r\n").endsWith("ok\n");
        }
    }
}
