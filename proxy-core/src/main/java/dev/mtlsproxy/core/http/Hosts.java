package dev.mtlsproxy.core.http;

import java.util.Locale;

/** Host header handling: one canonical form for matching, or a refusal. */
public final class Hosts {

    private Hosts() {
    }

    /**
     * Lower-cases, strips the port and one trailing dot, and removes IPv6 brackets.
     *
     * @return the canonical host, "" for an absent header, or null when the value is not a host (an empty label
     *         included)
     */
    public static String normalise(String hostHeader) {
        if (hostHeader == null) {
            return "";
        }
        String h = hostHeader.trim().toLowerCase(Locale.ROOT);
        if (h.startsWith("[")) {
            int close = h.indexOf(']');
            if (close < 0 || (close + 1 < h.length() && !validPort(h, close + 1))) {
                return null;
            }
            String literal = h.substring(1, close);
            return isIpv6Literal(literal) ? literal : null;
        }
        int colon = h.indexOf(':');
        if (colon >= 0) {
            if (!validPort(h, colon)) {
                return null;
            }
            h = h.substring(0, colon);
        }
        if (h.endsWith(".")) {
            h = h.substring(0, h.length() - 1);
        }
        // A name with an empty label ("a.test..", ".a.test", "a..test") is no host name (RFC 1123), and nginx
        // refuses it. Matched as written it would be no configured host, so the routes for any host would judge
        // it, while a backend that strips dots serves it as "a.test", whose own routes were never asked.
        if (h.isEmpty() || h.startsWith(".") || h.endsWith(".") || h.contains("..")) {
            return null;
        }
        for (int i = 0; i < h.length(); i++) {
            char c = h.charAt(i);
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
                return null;
            }
        }
        return h;
    }

    /**
     * The Host header as a backend receives it: the host {@link #normalise} judged (lower case, without one trailing
     * dot), and the port as sent. A backend that picks a virtual host or a tenant by the name must pick it by the
     * name the policy matched routes on: {@code ADMIN.example.com.} is {@code admin.example.com} to the policy, and
     * may be another name, or none, to a backend comparing strings.
     *
     * @param hostHeader a value {@link #normalise} accepted
     * @return {@code hostHeader} itself when it already is in that spelling, as nearly every one is: then nothing is
     *         allocated
     */
    public static String forwarded(String hostHeader) {
        String h = hostHeader.trim();
        int hostEnd = h.startsWith("[") ? h.indexOf(']') + 1 : h.indexOf(':');
        if (hostEnd < 0) {
            hostEnd = h.length();
        }
        boolean trailingDot = hostEnd > 0 && h.charAt(hostEnd - 1) == '.';
        boolean upperCase = false;
        for (int i = 0; i < hostEnd && !upperCase; i++) {
            char c = h.charAt(i);
            upperCase = c >= 'A' && c <= 'Z';
        }
        if (!trailingDot && !upperCase) {
            return h;
        }
        return h.substring(0, trailingDot ? hostEnd - 1 : hostEnd).toLowerCase(Locale.ROOT) + h.substring(hostEnd);
    }

    private static boolean isIpv6Literal(String s) {
        if (s.indexOf(':') < 0) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.')) {
                return false;
            }
        }
        return true;
    }

    /** Whether {@code h} ends, from {@code colon} on, with a colon and a port: 1-5 ASCII digits, at most 65535. */
    private static boolean validPort(String h, int colon) {
        int digits = h.length() - colon - 1;
        if (digits < 1 || digits > 5 || h.charAt(colon) != ':') {
            return false;
        }
        int port = 0;
        for (int i = colon + 1; i < h.length(); i++) {
            char c = h.charAt(i);
            if (c < '0' || c > '9') {
                return false;
            }
            port = port * 10 + (c - '0');
        }
        return port <= 65535;
    }
}
