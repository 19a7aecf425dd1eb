package dev.mtlsproxy.core.testing;

import static java.nio.charset.StandardCharsets.ISO_8859_1;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * A backend made of plain sockets on 127.0.0.1, for tests that must see the exact bytes the proxy sends or send
 * bytes no HTTP library would: each connection the proxy opens is served by the handler on a thread of its own, then
 * closed. The handler owns the protocol; an {@link IOException} it throws means the proxy closed the connection.
 */
public final class SocketBackend implements AutoCloseable {

    /** Serves one connection; returning (or throwing) ends it. */
    @FunctionalInterface
    public interface Handler {
        void serve(Socket connection) throws IOException, InterruptedException;
    }

    private final ServerSocket socket;
    private final String name;
    private final Handler handler;
    private final Queue<Thread> connections = new ConcurrentLinkedQueue<>();

    private SocketBackend(ServerSocket socket, String name, Handler handler) {
        this.socket = socket;
        this.name = name;
        this.handler = handler;
        Thread acceptor = new Thread(this::accept, name);
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /**
     * The bytes of one head from a raw connection, up to and including the blank line that ends it, as ISO-8859-1
     * text; null when the stream ends first.
     */
    public static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                return null;
            }
            head.write(b);
            matched = b == "\r\n\r\n".charAt(matched) ? matched + 1 : b == '\r' ? 1 : 0;
        }
        return head.toString(ISO_8859_1);
    }

    /** @param name the threads' name, as it shows in a thread dump of a hanging test */
    public static SocketBackend start(String name, Handler handler) throws IOException {
        return new SocketBackend(new ServerSocket(0, 200, InetAddress.getLoopbackAddress()), name, handler);
    }

    public String authority() {
        return "127.0.0.1:" + socket.getLocalPort();
    }

    public String url() {
        return "http://" + authority();
    }

    /** Connections accepted so far. */
    public int connectionsAccepted() {
        return connections.size();
    }

    /** Waits until every connection accepted so far has ended; false when one is still open after {@code limit}. */
    public boolean awaitConnectionsClosed(Duration limit) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        for (Thread serving : connections) {
            serving.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
            if (serving.isAlive()) {
                return false;
            }
        }
        return true;
    }

    private void accept() {
        while (!socket.isClosed()) {
            try {
                Socket connection = socket.accept();
                Thread serving = new Thread(() -> serve(connection), name + "-connection");
                serving.setDaemon(true);
                connections.add(serving);
                serving.start();
            } catch (IOException e) {
                return; // closed by the test
            }
        }
    }

    private void serve(Socket connection) {
        try (connection) {
            handler.serve(connection);
        } catch (IOException | InterruptedException e) {
            // the proxy closed the connection, or the test is over
        }
    }

    /** Stops accepting; connections being served end when the proxy closes them. */
    @Override
    public void close() throws IOException {
        socket.close();
    }
}
