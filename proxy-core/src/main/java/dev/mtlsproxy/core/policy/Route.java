package dev.mtlsproxy.core.policy;

import java.util.List;
import java.util.Set;

/**
 * A compiled route.
 *
 * @param name       from the config
 * @param host       which hosts it covers
 * @param pathPrefix segment-boundary prefix; "/" covers everything
 * @param methods    allowed methods, empty for any
 * @param backend    backend name
 * @param allowed    the identities granted this route; empty denies all
 */
public record Route(
        String name, HostPattern host, String pathPrefix, Set<String> methods, String backend,
        List<IdentityMatcher> allowed) {

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
