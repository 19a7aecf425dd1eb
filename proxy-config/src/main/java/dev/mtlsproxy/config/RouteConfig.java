package dev.mtlsproxy.config;

import java.util.List;
import java.util.Locale;

/**
 * A route: which requests it covers, where they go, and who may send them.
 *
 * @param name       unique label for logs and metrics
 * @param host       exact host, or {@code *.example.com} for one extra label; absent means any host; lower-cased
 * @param pathPrefix path prefix, matched on segment boundaries ({@code /api} covers {@code /api/x}, not {@code /apiary})
 * @param methods    allowed methods, upper-cased; empty means any
 * @param backend    name of a backend under {@code backends:}
 * @param allow      names of identities under {@code identities:} that may use the route; empty denies everyone
 */
public record RouteConfig(
        String name, String host, String pathPrefix, List<String> methods, String backend, List<String> allow) {

    public RouteConfig {
        // host names and methods compare case-insensitively; one spelling here keeps matching a plain equals
        host = host == null ? null : host.toLowerCase(Locale.ROOT);
        pathPrefix = pathPrefix == null ? "/" : pathPrefix;
        methods = methods == null ? List.of() : methods.stream().map(m -> m.toUpperCase(Locale.ROOT)).toList();
        allow = allow == null ? List.of() : List.copyOf(allow);
    }
}
