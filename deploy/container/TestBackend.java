import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/**
 * The backend on the host for deploy/container-test.sh: answers every request with 200 and the identity the proxy
 * forwarded ({@code X-Forwarded-Client-Cert}), so the test sees the request really went through the container.
 * Binds 127.0.0.1 on a free port and prints {@code port=N}; runs until killed. JDK only:
 * {@code java deploy/container/TestBackend.java}.
 */
public final class TestBackend {

    private TestBackend() {
    }

    public static void main(String[] args) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
        server.createContext("/", exchange -> {
            exchange.getRequestBody().transferTo(OutputStream.nullOutputStream());
            String xfcc = exchange.getRequestHeaders().getFirst("X-Forwarded-Client-Cert");
            byte[] body = ("backend saw " + exchange.getRequestMethod() + " " + exchange.getRequestURI()
                    + " from " + xfcc + "\n").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        System.out.println("port=" + server.getAddress().getPort());
        System.out.flush();
    }
}
