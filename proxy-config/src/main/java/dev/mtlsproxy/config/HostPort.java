package dev.mtlsproxy.config;

/**
 * A bind or connect address: {@code "127.0.0.1:8443"}, {@code "[::1]:8443"}, {@code "localhost:8443"}.
 *
 * @param host an IP literal (without brackets) or a host name
 * @param port 0 to 65535; 0 means "any free port" when binding
 */
public record HostPort(String host, int port) {

    /**
     * Parses {@code host:port}.
     *
     * @throws IllegalArgumentException with the expected form, when the text is not an address
     */
    public static HostPort parse(String text) {
        String s = text.trim();
        String host;
        String portText;
        if (s.startsWith("[")) {
            int close = s.indexOf(']');
            if (close < 0 || close + 1 >= s.length() || s.charAt(close + 1) != ':') {
                throw new IllegalArgumentException("expected: host:port, with IPv6 as [::1]:8443");
            }
            host = s.substring(1, close);
            portText = s.substring(close + 2);
        } else {
            int colon = s.lastIndexOf(':');
            if (colon <= 0 || s.indexOf(':') != colon) {
                throw new IllegalArgumentException("expected: host:port, with IPv6 as [::1]:8443");
            }
            host = s.substring(0, colon);
            portText = s.substring(colon + 1);
        }
        int port;
        try {
            port = Integer.parseInt(portText);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("expected: host:port with a port from 0 to 65535");
        }
        if (port < 0 || port > 65535 || host.isEmpty()) {
            throw new IllegalArgumentException("expected: host:port with a port from 0 to 65535");
        }
        return new HostPort(host, port);
    }

    /**
     * Whether binding both in one process fails: the same fixed port, on the same host or with either on every
     * address (a wildcard takes the port on every address, IPv4 and IPv6 alike). Port 0 picks a free port each time.
     * Host names are compared as written: {@code localhost} and {@code 127.0.0.1} are told apart only by the bind.
     */
    public boolean bindsOver(HostPort other) {
        return port != 0 && port == other.port
                && (host.equalsIgnoreCase(other.host) || isWildcard(host) || isWildcard(other.host));
    }

    private static boolean isWildcard(String host) {
        return host.equals("0.0.0.0") || host.equals("::") || host.equals("*");
    }

    @Override
    public String toString() {
        return host.indexOf(':') >= 0 ? "[" + host + "]:" + port : host + ":" + port;
    }
}
