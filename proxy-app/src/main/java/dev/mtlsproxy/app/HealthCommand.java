package dev.mtlsproxy.app;

import java.io.IOException;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;

/**
 * {@code mtls-proxy health}: asks the admin listener's {@code /readyz}. Lets a container image check itself without
 * shipping curl.
 */
final class HealthCommand {

    private HealthCommand() {
    }

    /** @param admin host:port, already checked by {@link Options} */
    static int run(String admin, PrintStream out, PrintStream err) {
        URI readyz = URI.create("http://" + admin + "/readyz");
        try {
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
            HttpResponse<String> response = client.send(HttpRequest.newBuilder(readyz)
                    .timeout(Duration.ofSeconds(3)).GET().build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() == 200) {
                out.println("ready");
                return Command.OK;
            }
            err.println("not ready: " + readyz + " answered " + response.statusCode());
            return Command.INVALID;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            err.println("not ready: interrupted");
            return Command.INVALID;
        } catch (IOException e) {
            err.println("not ready: no answer from " + readyz + " (" + cause(e) + ")");
            return Command.INVALID;
        }
    }

    /**
     * By type: the HTTP client's ConnectException for a refused connection carries no message at all, which printed
     * as a bare class name and left the operator to guess.
     */
    private static String cause(IOException e) {
        if (e instanceof HttpTimeoutException) {
            return "timed out";
        }
        if (e instanceof ConnectException) {
            return e.getMessage() == null ? "cannot connect; is the proxy running with this admin.address?"
                    : "cannot connect: " + e.getMessage();
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }
}
