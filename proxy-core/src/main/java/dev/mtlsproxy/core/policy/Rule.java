package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.HttpMethods;
import dev.mtlsproxy.config.PathPatterns;
import java.time.Instant;
import java.util.List;
import java.util.Set;

/**
 * One compiled rule of a route.
 *
 * @param number     1-based position in the route, as logs and {@code explain} name it
 * @param deny       a deny rule (else allow)
 * @param anyone     a deny rule for any client ({@code "*"})
 * @param identities the identities it names
 * @param methods    methods it covers, HEAD too when it names GET; empty for all
 * @param paths      path patterns it covers; empty for the whole route
 * @param expires    an allow rule stops matching at this instant; null for never
 */
record Rule(int number, boolean deny, boolean anyone, List<Identity> identities, Set<String> methods,
        List<String> paths, Instant expires) {

    /** Whether the rule covers this method and path, whoever asks. */
    boolean covers(String method, String path) {
        if (!methods.isEmpty() && !HttpMethods.names(methods, method)) {
            return false;
        }
        if (paths.isEmpty()) {
            return true;
        }
        for (String pattern : paths) {
            if (PathPatterns.covers(pattern, path)) {
                return true;
            }
        }
        return false;
    }

    boolean expiredAt(Instant now) {
        return expires != null && !now.isBefore(expires);
    }

    String describe() {
        StringBuilder s = new StringBuilder(deny ? "deny " : "allow ");
        s.append(anyone ? "[*]" : identities.stream().map(Identity::name).toList());
        if (!methods.isEmpty()) {
            s.append(" methods ").append(methods);
        }
        if (!paths.isEmpty()) {
            s.append(" paths ").append(paths);
        }
        if (expires != null) {
            s.append(" expires ").append(expires);
        }
        return s.toString();
    }
}
