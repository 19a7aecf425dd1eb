package dev.mtlsproxy.config;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A route: which requests it covers, where they go, and who may send them.
 *
 * @param name       unique label for logs and metrics
 * @param host       exact host, or {@code *.example.com} for one extra label; absent means any host; lower-cased
 * @param pathPrefix path prefix, matched on segment boundaries ({@code /api} covers {@code /api/x}, not {@code /apiary})
 * @param methods    methods the route serves, upper-cased; empty means any but TRACE; others get 405
 * @param backend    name of a backend under {@code backends:}
 * @param allow      shorthand for one allow rule naming these identities; not together with {@code rules}
 * @param rules      ordered allow/deny rules; deny wins, no match denies; none at all denies everyone
 * @param mode       {@code enforce} (default) or {@code dry-run}: forward everything, log and count the decision
 * @param require    conditions every client certificate must meet on this route
 */
public record RouteConfig(
        String name, String host, String pathPrefix, List<String> methods, String backend, List<String> allow,
        List<RuleConfig> rules, PolicyMode mode, CertificateRequirements require) {

    public RouteConfig {
        // host names and methods compare case-insensitively; one spelling here keeps matching a plain equals
        host = host == null ? null : host.toLowerCase(Locale.ROOT);
        pathPrefix = pathPrefix == null ? "/" : pathPrefix;
        methods = methods == null ? List.of() : methods.stream().map(m -> m.toUpperCase(Locale.ROOT)).toList();
        allow = allow == null ? List.of() : List.copyOf(allow);
        rules = rules == null ? List.of() : List.copyOf(rules);
        mode = mode == null ? PolicyMode.ENFORCE : mode;
    }

    /** A route granting whole access to the named identities, as most routes do. */
    public RouteConfig(String name, String host, String pathPrefix, List<String> methods, String backend,
            List<String> allow) {
        this(name, host, pathPrefix, methods, backend, allow, null, null, null);
    }

    /** The rules in force: {@code rules}, or the one rule {@code allow} stands for. */
    public List<RuleConfig> effectiveRules() {
        if (allow.isEmpty()) {
            return rules;
        }
        List<RuleConfig> all = new ArrayList<>(rules);
        all.add(new RuleConfig(allow, null, null, null, null));
        return List.copyOf(all);
    }
}
