package dev.mtlsproxy.app;

import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/**
 * {@code mtls-proxy health}: asks the admin listener's {@code /readyz}. Lets a container image check itself without
 * shipping curl.
 */
final class HealthCommand {

    private HealthCommand() {
    }

    static int run(String admin, PrintStream out, PrintStream err) {
        try {
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
            HttpResponse<String> response = client.send(HttpRequest.newBuilder(URI.create("http://" + admin + "/readyz"))
                    .timeout(Duration.ofSeconds(3)).GET().build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() == 200) {
                out.println("ready");
                return Command.OK;
            }
            err.println("not ready: " + response.statusCode());
            return Command.INVALID;
        } catch (Exception e) {
            err.println("not ready: " + e);
            return Command.INVALID;
        }
    }
}
