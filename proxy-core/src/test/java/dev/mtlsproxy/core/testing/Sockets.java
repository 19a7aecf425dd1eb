package dev.mtlsproxy.core.testing;

import java.io.IOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** What a test sees of a plain socket's peer. */
public final class Sockets {

    /** The kernel's TCP states by their number in /proc/net/tcp (include/net/tcp_states.h). */
    private static final List<String> TCP_STATES = List.of("?", "ESTABLISHED", "SYN_SENT", "SYN_RECV",
            "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
            "NEW_SYN_RECV");

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

    /**
     * The state the kernel (Linux) has for the TCP connection from local port {@code localPort} to remote port
     * {@code remotePort} on this machine, such as {@code ESTABLISHED} or {@code FIN_WAIT1}; null when it has none.
     * It sees another process's end of a loopback connection (the proxy's) without touching the connection: reading
     * from the peer socket would change what is being observed.
     */
    public static String tcpState(int localPort, int remotePort) throws IOException {
        String local = String.format(":%04X", localPort);
        String remote = String.format(":%04X", remotePort);
        for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            Path path = Path.of(table);
            if (!Files.isReadable(path)) {
                continue;
            }
            for (String line : Files.readAllLines(path)) {
                // "  sl  local_address rem_address   st ...": addresses are HEXIP:HEXPORT, st is hex
                String[] fields = line.trim().split("\\s+");
                if (fields.length > 3 && fields[1].endsWith(local) && fields[2].endsWith(remote)) {
                    int state = Integer.parseInt(fields[3], 16);
                    return state < TCP_STATES.size() ? TCP_STATES.get(state) : fields[3];
                }
            }
        }
        return null;
    }
}
