package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.PolicyMode;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Routes and rules, compiled once per configuration into an immutable structure. A decision is a pure function of
 * (client, request, instant): no I/O, no locks, default deny.
 *
 * <p>Route selection works like a virtual host in nginx or Envoy: the most specific host pattern that has routes
 * wins (exact, then wildcard, then any), and within it the longest path prefix that covers the path. Routes with
 * that same prefix are told apart by method; a method none of them serves is a 405; nothing matching is a 404.
 *
 * <p>Within the route: a client certificate that fails the route's requirements is denied; then <b>deny wins</b>:
 * any deny rule covering the request and naming the client refuses it, wherever it stands in the list; then the
 * first allow rule that covers the request and grants the client allows it; otherwise it is denied. Deny rules match
 * identities by name only, ignoring their certificate requirements, so a requirement can never lift a deny.
 *
 * <p>The same code serves the proxy and {@code explain}/{@code test}: with a {@link PolicyTrace} it also says why.
 */
public final class Policy {

    /** Routes by exact host, by wildcard suffix (".example.com"), and for any host; each longest prefix first. */
    private final Map<String, List<Route>> exactHosts;
    private final Map<String, List<Route>> wildcardHosts;
    private final List<Route> anyHost;
    private final List<Identity> identities;

    private Policy(Map<String, List<Route>> exactHosts, Map<String, List<Route>> wildcardHosts, List<Route> anyHost,
            List<Identity> identities) {
        this.exactHosts = exactHosts;
        this.wildcardHosts = wildcardHosts;
        this.anyHost = anyHost;
        this.identities = identities;
    }

    public static Policy compile(ProxyConfig config) {
        String onlyAnchor = config.trustAnchors().size() == 1
                ? config.trustAnchors().keySet().iterator().next() : null;
        Map<String, Identity> identities = new TreeMap<>();
        for (Map.Entry<String, IdentityConfig> e : config.identities().entrySet()) {
            identities.put(e.getKey(), Identity.compile(e.getKey(), e.getValue(), onlyAnchor));
        }
        Map<HostPattern, List<Route>> byHost = new HashMap<>();
        for (RouteConfig rc : config.routes()) {
            List<Rule> rules = new ArrayList<>();
            List<RuleConfig> configured = rc.effectiveRules();
            for (int i = 0; i < configured.size(); i++) {
                rules.add(compileRule(rc.name(), i + 1, configured.get(i), identities));
            }
            HostPattern host = HostPattern.of(rc.host());
            Route route = new Route(rc.name(), host, rc.pathPrefix(), new LinkedHashSet<>(rc.methods()),
                    rc.backend(), List.copyOf(rules), rc.mode() == PolicyMode.DRY_RUN,
                    CertificateCheck.of(rc.require()));
            byHost.computeIfAbsent(host, h -> new ArrayList<>()).add(route);
        }
        Map<String, List<Route>> exact = new HashMap<>();
        Map<String, List<Route>> wildcard = new HashMap<>();
        List<Route> any = List.of();
        for (Map.Entry<HostPattern, List<Route>> group : byHost.entrySet()) {
            List<Route> routes = new ArrayList<>(group.getValue());
            routes.sort(Comparator.comparingInt((Route r) -> -r.pathPrefix().length()));
            switch (group.getKey().kind()) {
                case EXACT -> exact.put(group.getKey().value(), List.copyOf(routes));
                case WILDCARD -> wildcard.put(group.getKey().value(), List.copyOf(routes));
                case ANY -> any = List.copyOf(routes);
            }
        }
        return new Policy(Map.copyOf(exact), Map.copyOf(wildcard), any, List.copyOf(identities.values()));
    }

    private static Rule compileRule(String route, int number, RuleConfig rc, Map<String, Identity> identities) {
        List<Identity> named = new ArrayList<>();
        boolean anyone = false;
        for (String name : rc.identities()) {
            if (rc.isDeny() && name.equals(RuleConfig.ANYONE)) {
                anyone = true;
                continue;
            }
            Identity identity = identities.get(name);
            if (identity == null) {
                throw new IllegalArgumentException("route " + route + " rule " + number + " names unknown identity "
                        + name);
            }
            named.add(identity);
        }
        return new Rule(number, rc.isDeny(), anyone, List.copyOf(named), new LinkedHashSet<>(rc.methods()),
                List.copyOf(rc.paths()), rc.expires());
    }

    public PolicyDecision decide(PeerIdentity peer, PolicyRequest request, Instant now) {
        return decide(peer, request, now, PolicyTrace.NONE);
    }

    public PolicyDecision decide(PeerIdentity peer, PolicyRequest request, Instant now, PolicyTrace trace) {
        // One connection, one host: a client that reached us for one configured name may not ask for another.
        if (request.sni() != null && !request.sni().equals(request.host()) && namesHost(request.sni())) {
            if (trace.enabled()) {
                trace.note("TLS server name " + request.sni() + " is a configured host, Host header says "
                        + request.host() + ": misdirected");
            }
            return PolicyDecision.MISDIRECTED;
        }
        List<Route> group = routesFor(request.host());
        if (group != null) {
            // Routes are sorted by prefix length: the first covering route fixes the prefix that decides. A
            // method it does not serve is a 405, never a fall-through to a shorter, possibly wider, prefix.
            Route longest = null;
            for (Route route : group) {
                if (longest != null && route.pathPrefix().length() < longest.pathPrefix().length()) {
                    break;
                }
                if (!route.coversPath(request.path())) {
                    continue;
                }
                if (longest == null) {
                    longest = route;
                }
                if (route.allowsMethod(request.method())) {
                    if (trace.enabled()) {
                        trace.note("route " + route.name() + " (host " + route.host() + ", pathPrefix "
                                + route.pathPrefix() + (route.dryRun() ? ", dry-run" : "") + ")");
                    }
                    return authorize(route, peer, request, now, trace);
                }
            }
            if (longest != null) {
                if (trace.enabled()) {
                    trace.note("route " + longest.name() + " covers the path but serves only "
                            + longest.servedMethods());
                }
                return new PolicyDecision(PolicyDecision.Outcome.METHOD_NOT_ALLOWED, longest, 0, null,
                        DenyReason.METHOD_NOT_ALLOWED, "");
            }
            if (trace.enabled()) {
                trace.note("no route for path " + request.path() + " under host pattern " + group.get(0).host());
            }
            return PolicyDecision.NO_ROUTE;
        }
        if (trace.enabled()) {
            trace.note("no route for host " + request.host());
        }
        return PolicyDecision.NO_ROUTE;
    }

    private static PolicyDecision authorize(Route route, PeerIdentity peer, PolicyRequest request, Instant now,
            PolicyTrace trace) {
        if (route.rules().isEmpty()) {
            if (trace.enabled()) {
                trace.note("  the route has no rules");
            }
            return deny(route, 0, null, DenyReason.NO_RULES, "");
        }
        CertificateCheck.Failure routeFailure = route.check().check(peer, now);
        if (routeFailure != null) {
            if (trace.enabled()) {
                trace.note("  route requirement failed: " + routeFailure.reason().text() + " " + routeFailure.detail());
            }
            return deny(route, 0, null, routeFailure.reason(), routeFailure.detail());
        }
        // Deny wins: every deny rule is checked before any allow, whatever the order they are written in.
        for (Rule rule : route.rules()) {
            if (!rule.deny()) {
                continue;
            }
            if (!covers(rule, request, trace)) {
                continue;
            }
            if (rule.anyone()) {
                if (trace.enabled()) {
                    trace.note("  rule " + rule.number() + " " + rule.describe() + ": DENY (anyone)");
                }
                return deny(route, rule.number(), null, DenyReason.DENIED_BY_RULE, "");
            }
            for (Identity identity : rule.identities()) {
                if (identity.is(peer)) {
                    if (trace.enabled()) {
                        trace.note("  rule " + rule.number() + " " + rule.describe() + ": DENY (client is "
                                + identity.name() + ")");
                    }
                    return deny(route, rule.number(), identity.name(), DenyReason.DENIED_BY_RULE, "");
                }
            }
            if (trace.enabled()) {
                trace.note("  rule " + rule.number() + " " + rule.describe() + ": client is none of these");
            }
        }
        PolicyDecision nearMiss = null;
        for (Rule rule : route.rules()) {
            if (rule.deny()) {
                continue;
            }
            if (!covers(rule, request, trace)) {
                continue;
            }
            for (Identity identity : rule.identities()) {
                if (!identity.is(peer)) {
                    continue;
                }
                if (rule.expiredAt(now)) {
                    if (trace.enabled()) {
                        trace.note("  rule " + rule.number() + " " + rule.describe() + ": client is " + identity.name()
                                + ", but the grant expired at " + rule.expires());
                    }
                    nearMiss = closer(nearMiss, deny(route, rule.number(), identity.name(), DenyReason.GRANT_EXPIRED,
                            "expired " + rule.expires()));
                    continue;
                }
                CertificateCheck.Failure failure = identity.check().check(peer, now);
                if (failure != null) {
                    if (trace.enabled()) {
                        trace.note("  rule " + rule.number() + " " + rule.describe() + ": client is " + identity.name()
                                + ", but " + failure.reason().text() + " (" + failure.detail() + ")");
                    }
                    nearMiss = closer(nearMiss, deny(route, 0, identity.name(), failure.reason(), failure.detail()));
                    continue;
                }
                if (trace.enabled()) {
                    trace.note("  rule " + rule.number() + " " + rule.describe() + ": ALLOW (client is "
                            + identity.name() + ")");
                }
                return new PolicyDecision(PolicyDecision.Outcome.ALLOW, route, rule.number(), identity.name(),
                        DenyReason.NONE, "");
            }
            if (nearMiss == null || nearMiss.rule() != rule.number()) {
                if (trace.enabled()) {
                    trace.note("  rule " + rule.number() + " " + rule.describe() + ": client is none of these");
                }
            }
        }
        return nearMiss != null ? nearMiss : deny(route, 0, null, DenyReason.NO_RULE_MATCHED, "");
    }

    private static boolean covers(Rule rule, PolicyRequest request, PolicyTrace trace) {
        boolean covers = rule.covers(request.method(), request.path());
        if (!covers && trace.enabled()) {
            trace.note("  rule " + rule.number() + " " + rule.describe() + ": does not cover " + request.method() + " "
                    + request.path());
        }
        return covers;
    }

    /** An expired grant explains a refusal better than a failed requirement, which beats "no rule matched". */
    private static PolicyDecision closer(PolicyDecision current, PolicyDecision candidate) {
        if (current == null) {
            return candidate;
        }
        return current.reason() == DenyReason.GRANT_EXPIRED ? current : candidate.reason() == DenyReason.GRANT_EXPIRED
                ? candidate : current;
    }

    private static PolicyDecision deny(Route route, int rule, String identity, DenyReason reason, String detail) {
        return new PolicyDecision(PolicyDecision.Outcome.DENY, route, rule, identity, reason, detail);
    }

    /** Whether some route names this host (exactly or by wildcard); "any host" routes name none. */
    public boolean namesHost(String host) {
        List<Route> group = routesFor(host);
        return group != null && group.get(0).host().kind() != HostPattern.Kind.ANY;
    }

    /**
     * The routes of the most specific host pattern that matches: the exact host, else the wildcard one label up
     * ({@code *.example.com} covers exactly one extra label), else any host; null when none has routes. Two map
     * lookups, whatever the number of hosts.
     */
    private List<Route> routesFor(String host) {
        List<Route> group = exactHosts.get(host);
        if (group != null) {
            return group;
        }
        int dot = host.indexOf('.');
        if (dot > 0) {
            group = wildcardHosts.get(host.substring(dot));
            if (group != null) {
                return group;
            }
        }
        return anyHost.isEmpty() ? null : anyHost;
    }

    /**
     * The configured identities this peer is (by anchor and name), in name order; a label and an explanation, not an
     * authorisation decision, which is always per route.
     */
    public List<String> identitiesOf(PeerIdentity peer) {
        List<String> names = new ArrayList<>();
        for (Identity identity : identities) {
            if (identity.is(peer)) {
                names.add(identity.name());
            }
        }
        return names;
    }

    /** The first configured identity (by name) this peer is, or "unknown": a metrics label. */
    public String identify(PeerIdentity peer) {
        String name = identityOf(peer);
        return name == null ? "unknown" : name;
    }

    /** The first configured identity (by name) this peer is, or null when it is none of them. */
    public String identityOf(PeerIdentity peer) {
        for (Identity identity : identities) {
            if (identity.is(peer)) {
                return identity.name();
            }
        }
        return null;
    }
}
