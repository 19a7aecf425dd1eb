package dev.mtlsproxy.config;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/** Checks {@code routes:}: what each route matches, and that the names it refers to exist. */
final class RouteValidator {

    static final String PATH_PREFIX_EXPECTED = "a path starting with /, without .., //, %, ?, #, ; or \\";
    static final String HOST_EXPECTED = "a host name like api.example.com or *.example.com, without port";
    static final String METHOD_EXPECTED = "an HTTP method like GET or POST";

    /** Rejected in prefixes because a proxy and a backend may normalise them differently (path confusion). */
    private static final List<String> UNSAFE_IN_PREFIX = List.of("..", "//", "%", "?", "#", ";", "\\");
    private static final Pattern METHOD = Pattern.compile("[!#$%&'*+.^_`|~0-9A-Z-]+");

    private final Problems problems;
    private final Set<String> identities;
    private final Set<String> backends;

    RouteValidator(Problems problems, Set<String> identities, Set<String> backends) {
        this.problems = problems;
        this.identities = new TreeSet<>(identities);
        this.backends = new TreeSet<>(backends);
    }

    void validate(List<RouteConfig> routes) {
        if (!problems.itemsIntact("routes")) {
            return;
        }
        UniqueNames names = new UniqueNames(problems);
        Map<String, String> matches = new HashMap<>();
        for (int i = 0; i < routes.size(); i++) {
            String path = YamlPaths.item("routes", i);
            RouteConfig route = routes.get(i);
            names.check(path, route.name(), "a unique route name");
            host(path + ".host", route.host());
            pathPrefix(path + ".pathPrefix", route.pathPrefix());
            methods(path + ".methods", route.methods());
            reference(path + ".backend", route.backend(), "backends", backends);
            if (problems.itemsIntact(path + ".allow")) {
                for (int a = 0; a < route.allow().size(); a++) {
                    reference(YamlPaths.item(path + ".allow", a), route.allow().get(a), "identities", identities);
                }
            }
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
        if (!prefix.startsWith("/")) {
            problems.add(path, Values.quote(prefix) + " (expected: " + PATH_PREFIX_EXPECTED + ")");
            return;
        }
        for (String unsafe : UNSAFE_IN_PREFIX) {
            if (prefix.contains(unsafe)) {
                problems.add(path, Values.quote(prefix) + " (expected: " + PATH_PREFIX_EXPECTED + ") - contains "
                        + Values.quote(unsafe));
                return;
            }
        }
    }

    private void methods(String path, List<String> methods) {
        if (!problems.itemsIntact(path)) {
            return;
        }
        for (int i = 0; i < methods.size(); i++) {
            if (!METHOD.matcher(methods.get(i)).matches()) {
                problems.add(YamlPaths.item(path, i), Values.quote(methods.get(i)) + " (expected: " + METHOD_EXPECTED + ")");
            }
        }
    }

    private void reference(String path, String name, String section, Set<String> known) {
        // a name whose definition failed to map exists in the file; that failure is reported already
        if (name != null && (known.contains(name) || problems.failedNamesUnder(section).contains(name))) {
            return;
        }
        String expected = "(expected: a name under " + section + ":, known: "
                + (known.isEmpty() ? "none" : String.join(", ", known)) + ")";
        problems.add(path, (name == null ? "missing" : Values.quote(name)) + " " + expected);
    }
}
