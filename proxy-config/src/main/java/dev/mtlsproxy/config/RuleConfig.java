package dev.mtlsproxy.config;

import java.time.Instant;
import java.util.List;
import java.util.Locale;

/**
 * One entry of a route's ordered rule list: exactly one of {@code allow} or {@code deny}, naming identities. A rule
 * applies to a request when the client is one of its identities and the method and path match. Deny wins over allow
 * whatever their order; no applicable allow means deny.
 *
 * @param allow   identities granted by this rule
 * @param deny    identities refused by this rule; {@code "*"} is any client
 * @param methods methods it covers, upper-cased; empty for any
 * @param paths   path patterns below the route's prefix, matched on segment boundaries; {@code *} stands for one
 *                whole segment; empty for the whole route
 * @param expires an allow rule stops matching at this instant (time-boxed access)
 */
public record RuleConfig(
        List<String> allow, List<String> deny, List<String> methods, List<String> paths, Instant expires) {

    /** In a deny rule, any client with a verified certificate. */
    public static final String ANYONE = "*";

    public RuleConfig {
        allow = allow == null ? List.of() : List.copyOf(allow);
        deny = deny == null ? List.of() : List.copyOf(deny);
        methods = methods == null ? List.of() : methods.stream().map(m -> m.toUpperCase(Locale.ROOT)).toList();
        paths = paths == null ? List.of() : List.copyOf(paths);
    }

    public static RuleConfig allow(String... identities) {
        return new RuleConfig(List.of(identities), null, null, null, null);
    }

    public static RuleConfig deny(String... identities) {
        return new RuleConfig(null, List.of(identities), null, null, null);
    }

    public RuleConfig withMethods(String... m) {
        return new RuleConfig(allow, deny, List.of(m), paths, expires);
    }

    public RuleConfig withPaths(String... p) {
        return new RuleConfig(allow, deny, methods, List.of(p), expires);
    }

    public RuleConfig withExpires(Instant at) {
        return new RuleConfig(allow, deny, methods, paths, at);
    }

    public boolean isDeny() {
        return !deny.isEmpty();
    }

    /** The identities the rule names, whichever kind it is. */
    public List<String> identities() {
        return isDeny() ? deny : allow;
    }
}
