package dev.mtlsproxy.core.proxy;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;

/**
 * Generates what {@link RoutePolicyPropertyTest} throws at the proxy: small policies whose routes share path
 * segments and hosts (so the most specific one has to be picked), and requests that try to reach a route by another
 * spelling of its path or host. Everything here is plain data of the test's own, so the {@link ReadmePolicyModel}
 * reads it without going through any of the proxy's types.
 */
final class RoutingScenarios {

    /** What a client certificate says: its SPIFFE ID and, for some, a DNS SAN. */
    record Workload(String name, String spiffeId, String dnsSan) {
    }

    /** A configured identity: one matcher of the three kinds the policy language offers that these tests use. */
    record NamedIdentity(String name, String spiffeId, String spiffeIdPrefix, String dnsSan) {
    }

    /** A rule as written in YAML: allow or deny, identities ("*" for anyone in a deny), methods, paths, expiry. */
    record GenRule(boolean deny, List<String> identities, List<String> methods, List<String> paths,
            Instant expires) {
    }

    /**
     * A route as written in YAML; {@code shorthand} writes its one rule as {@code allow: [...]} on the route.
     *
     * @param host null for any host
     */
    record GenRoute(String name, String host, String prefix, List<String> methods, List<GenRule> rules,
            boolean dryRun, boolean shorthand) {
    }

    /** One request: who sends it on a connection with which server name, and its request line and Host. */
    record Call(String tag, Workload client, String sni, String method, String target, String host) {

        String requestHead() {
            return method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nX-Case: " + tag + "\r\n\r\n";
        }
    }

    static final List<NamedIdentity> IDENTITIES = List.of(
            new NamedIdentity("orders", "spiffe://prod.test/ns/shop/sa/orders", null, null),
            new NamedIdentity("shop", null, "spiffe://prod.test/ns/shop", null),
            new NamedIdentity("batch", null, null, "*.jobs.test"),
            new NamedIdentity("ops", "spiffe://prod.test/ns/ops/sa/ops", null, null));

    /**
     * The clients: each is some of the identities, or a look-alike of one that is none of them (a SPIFFE ID that
     * only shares a string prefix with a namespace, a DNS name one label too deep for a wildcard).
     */
    static final List<Workload> WORKLOADS = List.of(
            new Workload("orders", "spiffe://prod.test/ns/shop/sa/orders", null),
            new Workload("cart", "spiffe://prod.test/ns/shop/sa/cart", null),
            new Workload("batch", "spiffe://prod.test/ns/jobs/sa/batch", "Nightly.Jobs.test"),
            new Workload("deep-batch", "spiffe://prod.test/ns/jobs/sa/deep", "a.nightly.jobs.test"),
            new Workload("ops", "spiffe://prod.test/ns/ops/sa/ops", null),
            new Workload("stranger", "spiffe://prod.test/ns/shopping/sa/x", null));

    static final List<String> ROUTE_HOSTS = List.of("api.example.test", "admin.example.test", "*.example.test");
    static final List<String> PREFIXES = List.of("/", "/api", "/apix", "/api/v1", "/api/v1/admin", "/admin",
            "/public", "/api/v1/users", "/API", "/odata/$batch", "/odata");
    /** Rule paths, below the route's prefix; "*" is one whole segment. */
    static final List<String> RULE_SUFFIXES = List.of("/admin", "/*/admin", "/v1", "/$batch", "/secret", "/*",
            "/users/*/keys");
    static final List<String> METHODS = List.of("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE");
    /** Path segments; none names one of TestBackend's special paths (/echo, /health, ...). */
    static final List<String> SEGMENTS = List.of("api", "apix", "v1", "admin", "public", "users", "API", "Admin",
            "$batch", "secret", "keys", "odata", "x", "a.b", "7", "~u");
    static final List<String> REQUEST_HOSTS = List.of("api.example.test", "admin.example.test", "x.example.test",
            "a.b.example.test", "example.test", "other.test", "localhost", "127.0.0.1");
    static final List<String> SERVER_NAMES = List.of("api.example.test", "admin.example.test", "x.example.test",
            "localhost", "other.test");

    /** Spellings a request path must never get past the proxy with (each is a 400 in the README). */
    static final List<String> REFUSED_TOKENS = List.of(";x", "%3B", "%3b", "%2F", "%2f", "%5C", "\\", "%00", "%0A",
            "%7F", "%C0%AE", "%c0%ae%c0%ae", "%E0%80%AE", "%F0%80%80%AE", "\u00e9", "#frag", "%zz", "%4", "%u002e");
    /** Spellings that are fine, but must reach the backend as the README says (decoded, upper-cased or as sent). */
    static final List<String> BENIGN_TOKENS = List.of("%C3%A9", "%c3%a9", "%25", "%252e%252e", "%2B", "+", "%20",
            "%E0%A0%80", "%7e", "%41", "%24", "%3A", "%40", "%21", "%3F", "%23", "'", "(", "*", ",");

    private RoutingScenarios() {
    }

    // ---- policies -----------------------------------------------------------------------------------------------

    static List<GenRoute> routes(Random random) {
        List<GenRoute> routes = new ArrayList<>();
        Set<String> taken = new HashSet<>();
        int count = 3 + random.nextInt(5);
        while (routes.size() < count) {
            String host = random.nextInt(5) < 2 ? null : pick(random, ROUTE_HOSTS);
            String prefix = pick(random, PREFIXES);
            List<String> methods = random.nextBoolean() ? List.of() : someOf(random, METHODS, 1 + random.nextInt(3));
            // The loader refuses two routes with the same host, prefix and methods; overlapping methods are fine.
            if (!taken.add(host + " " + prefix + " " + new TreeSet<>(methods))) {
                continue;
            }
            boolean shorthand = random.nextInt(6) == 0;
            List<GenRule> rules = shorthand ? List.of(new GenRule(false, someOf(random, names(), 1 + random.nextInt(2)),
                    List.of(), List.of(), null)) : rules(random, prefix);
            routes.add(new GenRoute("r" + routes.size(), host, prefix, methods, rules, random.nextInt(10) == 0,
                    shorthand));
        }
        return routes;
    }

    private static List<GenRule> rules(Random random, String prefix) {
        List<GenRule> rules = new ArrayList<>();
        int count = random.nextInt(8) == 0 ? 0 : 1 + random.nextInt(3);
        for (int i = 0; i < count; i++) {
            boolean deny = random.nextInt(10) < 3;
            List<String> who = deny && random.nextInt(5) == 0 ? List.of("*")
                    : someOf(random, names(), 1 + random.nextInt(2));
            List<String> methods = random.nextBoolean() ? List.of() : someOf(random, METHODS, 1 + random.nextInt(2));
            List<String> paths = new ArrayList<>();
            if (random.nextBoolean()) {
                for (int p = 1 + random.nextInt(2); p > 0; p--) {
                    paths.add(under(prefix, pick(random, RULE_SUFFIXES)));
                }
                if (!deny && random.nextInt(4) == 0) {
                    paths.add(under(prefix, "/")); // everything below the prefix, not the prefix itself
                }
            }
            Instant expires = null;
            if (!deny && random.nextInt(8) == 0) {
                expires = Instant.now().plus(random.nextBoolean() ? Duration.ofDays(-1) : Duration.ofDays(1));
            }
            rules.add(new GenRule(deny, who, methods, List.copyOf(new TreeSet<>(paths)), expires));
        }
        return rules;
    }

    private static String under(String prefix, String suffix) {
        return prefix.equals("/") ? suffix : prefix + suffix;
    }

    private static List<String> names() {
        return IDENTITIES.stream().map(NamedIdentity::name).toList();
    }

    // ---- requests -----------------------------------------------------------------------------------------------

    /**
     * A request aimed, most of the time, at one route of the policy: a name it covers, a path under it, a method it
     * serves, a client it names; then respelled and, now and then, pointed elsewhere.
     */
    static Call call(Random random, String tag, List<GenRoute> routes) {
        GenRoute aim = pick(random, routes);
        boolean aimed = random.nextInt(10) < 8;
        Workload client = aimed && random.nextInt(10) < 7 ? clientNamedBy(random, aim) : pick(random, WORKLOADS);
        String name = aimed ? hostOf(random, aim) : pick(random, REQUEST_HOSTS);
        // Mostly no server name, or the Host's own; sometimes one for another host, to be told apart by 421.
        int roll = random.nextInt(10);
        String sni = roll < 5 ? null : roll < 8 ? name : pick(random, SERVER_NAMES);
        String method = method(random, aimed ? aim : pick(random, routes));
        String host = hostSpelling(random, name);
        String path = disguise(random, plainPath(random, aimed ? aim : pick(random, routes), aimed));
        String target = path + query(random);
        if (random.nextInt(8) == 0) {
            // absolute-form: naming the Host (in another spelling) or, now and then, another host
            String authority = random.nextInt(4) == 0 ? pick(random, REQUEST_HOSTS) : hostSpelling(random, name);
            target = (random.nextBoolean() ? "http://" : "HTTPS://") + authority + target;
        }
        return new Call(tag, client, sni, method, target, host);
    }

    /** A client that one of the route's rules names, by one of the identities it is (any client if none). */
    private static Workload clientNamedBy(Random random, GenRoute route) {
        List<Workload> named = new ArrayList<>();
        for (Workload w : WORKLOADS) {
            for (GenRule rule : route.rules()) {
                for (NamedIdentity i : IDENTITIES) {
                    if (rule.identities().contains(i.name()) && ReadmePolicyModel.is(w, i)) {
                        named.add(w);
                    }
                }
            }
        }
        return pick(random, named.isEmpty() ? WORKLOADS : named);
    }

    /** A name the route covers: its host, one label under its wildcard, or any of ours for a route without host. */
    private static String hostOf(Random random, GenRoute route) {
        if (route.host() == null) {
            return pick(random, random.nextBoolean() ? List.of("other.test", "localhost", "127.0.0.1") : REQUEST_HOSTS);
        }
        return route.host().startsWith("*.") ? pick(random, List.of("x", "api", "a-b")) + route.host().substring(1)
                : route.host();
    }

    private static String method(Random random, GenRoute route) {
        int roll = random.nextInt(30);
        if (roll == 0) {
            return "get"; // lower case: refused, never upper-cased past a deny
        }
        if (roll == 1) {
            return "PURGE";
        }
        if (roll < 20) {
            if (!route.methods().isEmpty()) {
                return pick(random, route.methods());
            }
            for (GenRule rule : route.rules()) {
                if (!rule.methods().isEmpty()) {
                    return pick(random, rule.methods());
                }
            }
        }
        return random.nextInt(3) == 0 ? pick(random, METHODS) : "GET";
    }

    /** A path near the route: its prefix or one of its rule paths, maybe with more below; or random segments. */
    private static String plainPath(Random random, GenRoute route, boolean aimed) {
        StringBuilder path = new StringBuilder();
        if (aimed || random.nextBoolean()) {
            List<String> anchors = new ArrayList<>(List.of(route.prefix()));
            route.rules().forEach(rule -> anchors.addAll(rule.paths()));
            String anchor = pick(random, anchors).replace("*", pick(random, SEGMENTS));
            path.append(anchor.equals("/") ? "" : anchor);
        }
        for (int extra = random.nextInt(3); extra > 0; extra--) {
            path.append('/').append(pick(random, SEGMENTS));
        }
        if (path.length() == 0 || random.nextInt(8) == 0) {
            path.append('/');
        }
        return path.toString();
    }

    /**
     * Respells a path the ways that keep its meaning (escapes in either case, dot segments, doubled slashes, a
     * trailing slash, escapes that stay escaped), and now and then adds one that must be refused or that climbs.
     */
    static String disguise(Random random, String path) {
        String p = path;
        for (int tricks = random.nextInt(3); tricks > 0; tricks--) {
            switch (random.nextInt(5)) {
                case 0 -> p = escapeSomeCharacters(random, p);
                case 1 -> p = atSlash(random, p, pick(random, List.of("/./", "/%2e/", "/%2E/", "/x/../",
                        "/x/%2e%2e/", "/x/.%2E/", "/API/%2E%2e/")));
                case 2 -> p = atSlash(random, p, "//");
                case 3 -> p = random.nextBoolean() ? p + "/" : p + "/.";
                default -> p = random.nextInt(4) == 0 ? insert(random, p, pick(random, BENIGN_TOKENS))
                        : p + "/" + pick(random, BENIGN_TOKENS);
            }
        }
        if (random.nextInt(4) == 0) {
            p = switch (random.nextInt(3)) {
                case 0 -> insert(random, p, pick(random, REFUSED_TOKENS));
                case 1 -> atSlash(random, p, pick(random, List.of("/../", "/%2e%2e/", "/.%2E/", "/..%2f")));
                default -> "/.." + p;
            };
        }
        return p;
    }

    private static String escapeSomeCharacters(Random random, String path) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < path.length(); i++) {
            char c = path.charAt(i);
            if (c == '%' && i + 2 < path.length()) {
                out.append(path, i, i + 3); // an escape stays one
                i += 2;
            } else if (c != '/' && c < 0x80 && random.nextInt(3) == 0) {
                String hex = String.format("%02X", (int) c);
                out.append('%').append(random.nextBoolean() ? hex : hex.toLowerCase(Locale.ROOT));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    /** Replaces one "/" of the path, chosen at random, with {@code replacement}. */
    private static String atSlash(Random random, String path, String replacement) {
        List<Integer> slashes = new ArrayList<>();
        for (int i = 0; i < path.length(); i++) {
            if (path.charAt(i) == '/') {
                slashes.add(i);
            }
        }
        int at = pick(random, slashes);
        return path.substring(0, at) + replacement + path.substring(at + 1);
    }

    /** Inserts a token inside a segment or at its end, never before the leading "/". */
    private static String insert(Random random, String path, String token) {
        int at = 1 + random.nextInt(path.length());
        return path.substring(0, at) + token + path.substring(at);
    }

    private static String query(Random random) {
        return switch (random.nextInt(12)) {
            case 0 -> "?q=1";
            case 1 -> "?next=/admin/../x&%2e%2e";
            case 2 -> "?";
            case 3 -> random.nextBoolean() ? "?\u00e9" : ""; // non-ASCII in the query: refused
            default -> "";
        };
    }

    /** Another spelling of the same host: letters in upper case, a trailing dot, a port; rarely one that is wrong. */
    static String hostSpelling(Random random, String host) {
        StringBuilder h = new StringBuilder();
        boolean shout = random.nextInt(3) == 0;
        for (char c : host.toCharArray()) {
            h.append(shout && random.nextBoolean() ? Character.toUpperCase(c) : c);
        }
        switch (random.nextInt(16)) {
            case 0, 1, 2 -> h.append('.');
            case 3 -> h.append(random.nextBoolean() ? ".." : "");
            case 4 -> h.insert(0, random.nextBoolean() ? "." : "");
            default -> {
            }
        }
        if (random.nextInt(4) == 0) {
            h.append(pick(random, List.of(":8443", ":443", ":80", ":1")));
        }
        return h.toString();
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    static <T> T pick(Random random, List<T> from) {
        return from.get(random.nextInt(from.size()));
    }

    private static <T> List<T> someOf(Random random, List<T> from, int n) {
        List<T> pool = new ArrayList<>(from);
        List<T> chosen = new ArrayList<>();
        for (int i = 0; i < n && !pool.isEmpty(); i++) {
            chosen.add(pool.remove(random.nextInt(pool.size())));
        }
        return List.copyOf(chosen);
    }

    /** The policy as its YAML would read, for a failure report. */
    static String describe(List<GenRoute> routes) {
        StringBuilder s = new StringBuilder("routes:");
        for (GenRoute r : routes) {
            Map<String, Object> fields = new LinkedHashMap<>();
            fields.put("host", r.host());
            fields.put("pathPrefix", r.prefix());
            fields.put("methods", r.methods().isEmpty() ? null : r.methods());
            fields.put("mode", r.dryRun() ? "dry-run" : null);
            s.append("\n  - name: ").append(r.name());
            fields.forEach((k, v) -> {
                if (v != null) {
                    s.append("\n    ").append(k).append(": ").append(v);
                }
            });
            if (r.shorthand()) {
                s.append("\n    allow: ").append(r.rules().get(0).identities());
                continue;
            }
            s.append("\n    rules:").append(r.rules().isEmpty() ? " []" : "");
            for (GenRule rule : r.rules()) {
                s.append("\n      - ").append(rule.deny() ? "deny: " : "allow: ").append(rule.identities());
                if (!rule.methods().isEmpty()) {
                    s.append(", methods: ").append(rule.methods());
                }
                if (!rule.paths().isEmpty()) {
                    s.append(", paths: ").append(rule.paths());
                }
                if (rule.expires() != null) {
                    s.append(", expires: ").append(rule.expires());
                }
            }
        }
        return s.toString();
    }
}
