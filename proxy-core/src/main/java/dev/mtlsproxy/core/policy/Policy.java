package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Routes and grants, compiled once per configuration into an immutable structure. A decision is a pure function of
 * (identity, method, host, normalised path): no I/O, no locks, default deny.
 *
 * <p>Route selection works like a virtual host in nginx or Envoy: the most specific host pattern that has routes
 * wins (exact, then wildcard, then any), and within it the longest path prefix that covers the path. Routes with
 * that same prefix are told apart by method; a method none of them allows is a 405; nothing matching is a 404.
 */
public final class Policy {

    private final List<List<Route>> routesBySpecificity;
    private final List<IdentityMatcher> identities;

    private Policy(List<List<Route>> routesBySpecificity, List<IdentityMatcher> identities) {
        this.routesBySpecificity = routesBySpecificity;
        this.identities = identities;
    }

    public static Policy compile(ProxyConfig config) {
        Map<String, IdentityMatcher> identities = new TreeMap<>();
        for (Map.Entry<String, IdentityConfig> e : config.identities().entrySet()) {
            identities.put(e.getKey(), IdentityMatcher.compile(e.getKey(), e.getValue()));
        }
        Map<HostPattern, List<Route>> byHost = new TreeMap<>(
                Comparator.comparing(HostPattern::kind)
                        .thenComparing(h -> -h.value().length())
                        .thenComparing(HostPattern::value));
        for (RouteConfig rc : config.routes()) {
            List<IdentityMatcher> allowed = new ArrayList<>();
            for (String name : rc.allow()) {
                IdentityMatcher m = identities.get(name);
                if (m == null) {
                    throw new IllegalArgumentException("route " + rc.name() + " allows unknown identity " + name);
                }
                allowed.add(m);
            }
            HostPattern host = HostPattern.of(rc.host());
            Route route = new Route(rc.name(), host, rc.pathPrefix(), new LinkedHashSet<>(rc.methods()),
                    rc.backend(), List.copyOf(allowed));
            byHost.computeIfAbsent(host, h -> new ArrayList<>()).add(route);
        }
        List<List<Route>> ordered = new ArrayList<>();
        for (List<Route> routes : byHost.values()) {
            routes.sort(Comparator.comparingInt((Route r) -> -r.pathPrefix().length()));
            ordered.add(List.copyOf(routes));
        }
        return new Policy(List.copyOf(ordered), List.copyOf(identities.values()));
    }

    /**
     * @param host lower-cased host without port or trailing dot
     * @param path normalised path (no query)
     */
    public PolicyDecision decide(PeerIdentity peer, String method, String host, String path) {
        for (List<Route> group : routesBySpecificity) {
            if (!group.get(0).host().matches(host)) {
                continue;
            }
            // Routes are sorted by prefix length: the first covering route fixes the prefix that decides. A
            // method it does not allow is a 405, never a fall-through to a shorter, possibly wider, prefix.
            Route longest = null;
            for (Route route : group) {
                if (longest != null && route.pathPrefix().length() < longest.pathPrefix().length()) {
                    break;
                }
                if (!route.coversPath(path)) {
                    continue;
                }
                if (longest == null) {
                    longest = route;
                }
                if (route.allowsMethod(method)) {
                    return authorize(route, peer);
                }
            }
            return longest != null
                    ? new PolicyDecision(PolicyDecision.Outcome.METHOD_NOT_ALLOWED, longest, null)
                    : new PolicyDecision(PolicyDecision.Outcome.NO_ROUTE, null, null);
        }
        return new PolicyDecision(PolicyDecision.Outcome.NO_ROUTE, null, null);
    }

    /**
     * The first configured identity (by name) this peer is, or "unknown": a metrics label, not an authorisation
     * decision, which is always per route.
     */
    public String identify(PeerIdentity peer) {
        for (IdentityMatcher m : identities) {
            if (m.matches(peer)) {
                return m.name();
            }
        }
        return "unknown";
    }

    private static PolicyDecision authorize(Route route, PeerIdentity peer) {
        for (IdentityMatcher grant : route.allowed()) {
            if (grant.matches(peer)) {
                return new PolicyDecision(PolicyDecision.Outcome.ALLOW, route, grant.name());
            }
        }
        return new PolicyDecision(PolicyDecision.Outcome.DENY, route, null);
    }
}
