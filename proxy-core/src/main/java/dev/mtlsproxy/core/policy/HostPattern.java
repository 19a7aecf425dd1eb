package dev.mtlsproxy.core.policy;

import java.util.Locale;

/**
 * A route's host: any host, one exact name, or {@code *.example.com} (exactly one extra label, like a TLS wildcard).
 * Requests are matched on the Host header lower-cased, without port or trailing dot.
 */
record HostPattern(Kind kind, String value) {

    enum Kind {
        // Declared from most to least specific: route selection relies on this order.
        EXACT, WILDCARD, ANY
    }

    static final HostPattern ANY_HOST = new HostPattern(Kind.ANY, "");

    static HostPattern of(String host) {
        if (host == null || host.isEmpty() || host.equals("*")) {
            return ANY_HOST;
        }
        String h = host.toLowerCase(Locale.ROOT);
        if (h.startsWith("*.")) {
            return new HostPattern(Kind.WILDCARD, h.substring(1)); // keeps the leading dot: ".example.com"
        }
        return new HostPattern(Kind.EXACT, h);
    }

    /** @param host lower-cased, no port, no trailing dot */
    boolean matches(String host) {
        return switch (kind) {
            case ANY -> true;
            case EXACT -> value.equals(host);
            case WILDCARD -> host.endsWith(value)
                    && host.length() > value.length()
                    && host.lastIndexOf('.', host.length() - value.length() - 1) < 0;
        };
    }

    @Override
    public String toString() {
        return switch (kind) {
            case ANY -> "*";
            case EXACT -> value;
            case WILDCARD -> "*" + value;
        };
    }
}
