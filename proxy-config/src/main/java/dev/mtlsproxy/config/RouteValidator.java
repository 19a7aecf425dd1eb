package dev.mtlsproxy.config;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/** Checks {@code routes:}: what each route matches, and that the names it refers to exist. */
final class RouteValidator {

    static final String PATH_PREFIX_EXPECTED = "a path starting with /, of letters, digits and -._~!$&'()*,=:@,"
            + " without . or .. segments or //";
    static final String HOST_EXPECTED = "a host name like api.example.com or *.example.com, without port";
    static final String METHOD_EXPECTED = "an HTTP method like GET or POST";
    static final String RULE_PATH_EXPECTED = "a path starting with /, * for one whole segment, of letters, digits"
            + " and -._~!$&'()*,=:@, without . or .. segments or //";

    /** Rejected in prefixes because a proxy and a backend may normalise them differently (path confusion). */
    private static final List<String> UNSAFE_IN_PREFIX = List.of("..", "//", "%", "?", "#", ";", "\\");
    private static final Pattern METHOD = Pattern.compile("[!#$%&'*+.^_`|~0-9A-Z-]+");

    private final Problems problems;
    private final Set<String> identities;
    private final Set<String> backends;
    private final IdentityValidator requirements;

    RouteValidator(Problems problems, Set<String> identities, Set<String> backends, IdentityValidator requirements) {
        this.problems = problems;
        this.identities = new TreeSet<>(identities);
        this.backends = new TreeSet<>(backends);
        this.requirements = requirements;
    }

    private void rule(String path, RuleConfig rule, String routePrefix) {
        if (rule.allow().isEmpty() == rule.deny().isEmpty()) {
            problems.add(path, (rule.allow().isEmpty() ? "a rule without identities" : "a rule with both")
                    + " (expected: exactly one of allow or deny, with at least one identity)");
        }
        String kind = rule.isDeny() ? "deny" : "allow";
        List<String> names = rule.identities();
        List<String> nameItems = problems.itemPaths(path + "." + kind, names.size());
        for (int i = 0; i < nameItems.size(); i++) {
            String item = nameItems.get(i);
            if (names.get(i).equals(RuleConfig.ANYONE)) {
                if (!rule.isDeny()) {
                    problems.add(item, "\"*\" (expected: a name under identities:) - \"*\" (anyone) is for "
                            + "deny rules only: grants name who they grant");
                }
                continue;
            }
            References.check(problems, item, names.get(i), "identities", identities);
        }
        methods(path + ".methods", rule.methods());
        if (rule.expires() != null && rule.isDeny()) {
            problems.add(path + ".expires", rule.expires() + " (expected: only on allow rules) - a deny rule that "
                    + "lapses would silently widen access");
        }
        List<String> pathItems = problems.itemPaths(path + ".paths", rule.paths().size());
        for (int i = 0; i < pathItems.size(); i++) {
            String pattern = rule.paths().get(i);
            if (rule.isDeny() && pattern.length() > 1 && pattern.endsWith("/")) {
                // "/x/" does not cover "/x", which Express (non-strict routing, its default) and servers that
                // redirect to the directory serve as "/x/": the deny would have a hole exactly at its name.
                problems.add(pathItems.get(i), Values.quote(pattern) + " (expected: a deny"
                        + " path without a trailing /) - it would not cover "
                        + Values.quote(pattern.substring(0, pattern.length() - 1)) + "; "
                        + Values.quote(pattern.substring(0, pattern.length() - 1)) + " covers both");
                continue;
            }
            rulePath(pathItems.get(i), pattern, routePrefix);
        }
    }

    /** A rule's path must lie below its route, or it could never apply; a deny that never applies is a hole. */
    private void rulePath(String path, String pattern, String routePrefix) {
        if (!safePath(path, pattern, RULE_PATH_EXPECTED)) {
            return;
        }
        for (String segment : pattern.substring(1).split("/", -1)) {
            if (segment.contains("*") && !segment.equals("*")) {
                problems.add(path, Values.quote(pattern) + " (expected: " + RULE_PATH_EXPECTED + ") - * stands "
                        + "for a whole segment only");
                return;
            }
        }
        if (!PathPatterns.within(pattern, routePrefix)) {
            problems.add(path, Values.quote(pattern) + " (expected: a path under the route's pathPrefix "
                    + Values.quote(routePrefix) + ")");
        }
    }

    void validate(List<RouteConfig> routes) {
        List<String> paths = problems.itemPaths("routes", routes.size());
        UniqueNames names = new UniqueNames(problems);
        Map<String, String> matches = new HashMap<>();
        for (int i = 0; i < paths.size(); i++) {
            String path = paths.get(i);
            RouteConfig route = routes.get(i);
            names.check(path, route.name(), "a unique route name");
            host(path + ".host", route.host());
            pathPrefix(path + ".pathPrefix", route.pathPrefix());
            methods(path + ".methods", route.methods());
            References.check(problems, path + ".backend", route.backend(), "backends", backends);
            List<String> allow = problems.itemPaths(path + ".allow", route.allow().size());
            for (int a = 0; a < allow.size(); a++) {
                References.check(problems, allow.get(a), route.allow().get(a), "identities", identities);
            }
            if (!route.allow().isEmpty() && !route.rules().isEmpty()) {
                problems.add(path + ".allow", "a list (expected: either allow or rules on a route, not both) - "
                        + "allow is shorthand for one allow rule; add it to rules");
            }
            List<String> rules = problems.itemPaths(path + ".rules", route.rules().size());
            for (int r = 0; r < rules.size(); r++) {
                rule(rules.get(r), route.rules().get(r), route.pathPrefix());
            }
            requirements.requirements(path + ".require", route.require());
            String match = "host=" + (route.host() == null ? "any" : route.host())
                    + " pathPrefix=" + route.pathPrefix()
                    + " methods=" + (route.methods().isEmpty() ? "any" : String.join(",", new TreeSet<>(route.methods())));
            String earlier = matches.putIfAbsent(match, path);
            if (earlier != null) {
                problems.add(path, match + " (expected: a unique host, pathPrefix and methods) - same as " + earlier);
            }
        }
    }

    static boolean isHostName(String host) {
        if (host.isEmpty() || host.length() > 253) {
            return false;
        }
        for (String label : host.split("\\.", -1)) {
            if (!label.matches("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")) {
                return false;
            }
        }
        return true;
    }

    private void host(String path, String host) {
        if (host == null) {
            return;
        }
        String name = host.startsWith("*.") ? host.substring(2) : host;
        if (!isHostName(name)) {
            problems.add(path, Values.quote(host) + " (expected: " + HOST_EXPECTED + ")");
        }
    }

    private void pathPrefix(String path, String prefix) {
        if (safePath(path, prefix, PATH_PREFIX_EXPECTED) && prefix.length() > 1 && prefix.endsWith("/")) {
            // "/admin/" does not cover "/admin", which would fall through to a shorter route's rules, while Express
            // (non-strict routing, its default) serves it with the "/admin/" handler: a hole in the route exactly at
            // its name. Prefixes match on segment boundaries, so "/admin" covers both.
            String bare = prefix.substring(0, prefix.length() - 1);
            problems.add(path, Values.quote(prefix) + " (expected: a pathPrefix without a trailing /) - it would not"
                    + " cover " + Values.quote(bare) + "; " + Values.quote(bare) + " covers both");
        }
    }

    /** Absolute, and free of what a proxy and a backend may normalise differently (path confusion). */
    private boolean safePath(String path, String value, String expected) {
        if (!value.startsWith("/")) {
            problems.add(path, Values.quote(value) + " (expected: " + expected + ")");
            return false;
        }
        for (String unsafe : UNSAFE_IN_PREFIX) {
            if (value.contains(unsafe)) {
                problems.add(path, Values.quote(value) + " (expected: " + expected + ") - contains "
                        + Values.quote(unsafe));
                return false;
            }
        }
        // A request's path is compared after normalisation, which leaves no "." segment and spells these
        // characters, and only these, raw. Any other character (a space, "+", "é") is never in a normalised path
        // as written here, so a route or a deny rule naming it would never apply, while the backend, decoding the
        // request, serves it: "/files/a b" is "/files/a%20b" to the policy.
        if (value.equals("/.") || value.contains("/./") || value.endsWith("/.")) {
            problems.add(path, Values.quote(value) + " (expected: " + expected + ") - contains a \".\" segment");
            return false;
        }
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (!isPathCharacter(c)) {
                problems.add(path, Values.quote(value) + " (expected: " + expected + ") - contains "
                        + Values.quote(String.valueOf(c)));
                return false;
            }
        }
        return true;
    }

    /** The characters a normalised request path spells raw (RequestTarget decodes their escapes), and "/". */
    private static boolean isPathCharacter(char c) {
        return c == '/' || PathPatterns.isSpelledRaw(c);
    }

    private void methods(String path, List<String> methods) {
        List<String> items = problems.itemPaths(path, methods.size());
        for (int i = 0; i < items.size(); i++) {
            if (!METHOD.matcher(methods.get(i)).matches()) {
                problems.add(items.get(i), Values.quote(methods.get(i)) + " (expected: " + METHOD_EXPECTED + ")");
            }
        }
    }
}
