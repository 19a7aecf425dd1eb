package dev.mtlsproxy.core.testing;

import java.io.IOException;
import java.net.Socket;
import java.net.SocketTimeoutException;

/** What a test sees of a plain socket's peer. */
public final class Sockets {

    private Sockets() {
    }

    /** True when the peer closes the socket (EOF or reset) within {@code millis}; a timeout is never a close. */
    public static boolean closedWithin(Socket socket, int millis) throws IOException {
        socket.setSoTimeout(millis);
        try {
            return socket.getInputStream().read() < 0;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (IOException e) {
            return true;
        }
    }
}
