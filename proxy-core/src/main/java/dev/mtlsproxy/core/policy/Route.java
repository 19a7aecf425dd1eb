package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.HttpMethods;
import java.util.List;
import java.util.Set;
import java.util.StringJoiner;

/**
 * A compiled route.
 *
 * @param name       from the config
 * @param host       which hosts it covers
 * @param pathPrefix segment-boundary prefix; "/" covers everything
 * @param methods    methods it serves, empty for any but TRACE; GET serves HEAD too
 * @param backend    backend name
 * @param rules      in order; deny wins, no rule means deny
 * @param dryRun     decisions are logged and counted, every request is forwarded
 * @param check      requirements on every client certificate on this route
 */
public record Route(
        String name, HostPattern host, String pathPrefix, Set<String> methods, String backend, List<Rule> rules,
        boolean dryRun, CertificateCheck check) {

    boolean coversPath(String path) {
        if (pathPrefix.equals("/")) {
            return true;
        }
        if (!path.startsWith(pathPrefix)) {
            return false;
        }
        // "/api" covers "/api" and "/api/x", never "/apiary".
        return path.length() == pathPrefix.length()
                || pathPrefix.endsWith("/")
                || path.charAt(pathPrefix.length()) == '/';
    }

    /** What a route for any method answers a 405 with in Allow: the common methods (it serves others too). */
    private static final String ANY_BUT_TRACE_ALLOW = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

    boolean allowsMethod(String method) {
        // TRACE sends the request back as the backend received it, X-Forwarded-Client-Cert and X-Forwarded-For
        // included, to whatever sent it: a script that can make a client send one reads what the proxy vouched
        // for (cross-site tracing). nginx refuses TRACE outright; here a route that names it serves it.
        return methods.isEmpty() ? !method.equals("TRACE") : HttpMethods.names(methods, method);
    }

    /**
     * The value of Allow in a 405 for this route (RFC 9110 15.5.6 requires one): its methods, with HEAD after GET
     * when it names GET alone, since it serves HEAD then too.
     */
    public String allowHeader() {
        if (methods.isEmpty()) {
            return ANY_BUT_TRACE_ALLOW;
        }
        if (!methods.contains("GET") || methods.contains("HEAD")) {
            return String.join(", ", methods);
        }
        StringJoiner allow = new StringJoiner(", ");
        for (String method : methods) {
            allow.add(method);
            if (method.equals("GET")) {
                allow.add("HEAD");
            }
        }
        return allow.toString();
    }

    /** The methods the route serves, as the policy trace and {@code explain} show them. */
    public String servedMethods() {
        return methods.isEmpty() ? "any method but TRACE" : methods.toString();
    }
}
