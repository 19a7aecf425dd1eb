package dev.mtlsproxy.core.policy;

import java.util.List;
import java.util.Set;

/**
 * A compiled route.
 *
 * @param name       from the config
 * @param host       which hosts it covers
 * @param pathPrefix segment-boundary prefix; "/" covers everything
 * @param methods    methods it serves, empty for any
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

    boolean allowsMethod(String method) {
        return methods.isEmpty() || methods.contains(method);
    }
}
