package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.proxy.RoutingScenarios.Call;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRoute;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRule;
import dev.mtlsproxy.core.proxy.RoutingScenarios.NamedIdentity;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Workload;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * What the README promises for a request, written from the README ("The policy language", "Security model and
 * defaults", "What the backend receives") and the RFCs it cites, sharing no code with the proxy: the status, and for
 * a forwarded request the target and Host the backend must receive. Where the README is silent, the choice the model
 * makes is written down in the README too (malformed escapes, host names with an empty label, routes sharing a
 * prefix).
 */
final class ReadmePolicyModel {

    /**
     * @param status         200 for forwarded (the backend answers 200), else the proxy's own status
     * @param target         what the backend must receive as its request-target; null when not forwarded
     * @param host           what the backend must receive as Host; null when not forwarded
     * @param why            the README's reason, for a failure report
     * @param route          the route that took the request (its backend answers); null when not forwarded
     */
    record Verdict(int status, String target, String host, String why, String route) {

        static Verdict refused(int status, String why) {
            return new Verdict(status, null, null, why, null);
        }
    }

    /** Thrown inside the model for a request the README refuses with 400. */
    private static final class BadRequest extends Exception {
        private static final long serialVersionUID = 1L;

        BadRequest(String why) {
            super(why, null, false, false);
        }
    }

    /** Characters whose escapes the README says are decoded: unreserved, and {@code ! $ & ' ( ) * , = : @}. */
    private static final String DECODED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
            + "!$&'()*,=:@";

    private ReadmePolicyModel() {
    }

    static Verdict judge(List<GenRoute> routes, List<NamedIdentity> identities, Call call, Instant now) {
        try {
            return judgeValid(routes, identities, call, now);
        } catch (BadRequest e) {
            return Verdict.refused(400, e.getMessage());
        }
    }

    private static Verdict judgeValid(List<GenRoute> routes, List<NamedIdentity> identities, Call call,
            Instant now) throws BadRequest {
        if (!call.method().equals(call.method().toUpperCase(Locale.ROOT))) {
            throw new BadRequest("a method with lower-case letters");
        }
        // Origin-form, or absolute-form whose authority names the Host; the backend gets origin-form.
        String target = call.target();
        String authority = null;
        if (!target.startsWith("/")) {
            String lower = target.toLowerCase(Locale.ROOT);
            String scheme = lower.startsWith("http://") ? "http://" : lower.startsWith("https://") ? "https://" : null;
            if (scheme == null) {
                throw new BadRequest("neither origin- nor absolute-form");
            }
            String afterScheme = target.substring(scheme.length());
            int end = 0;
            while (end < afterScheme.length() && afterScheme.charAt(end) != '/' && afterScheme.charAt(end) != '?') {
                end++;
            }
            authority = afterScheme.substring(0, end);
            target = afterScheme.substring(end);
            if (!target.startsWith("/")) {
                target = "/" + target;
            }
        }
        if (target.contains("#")) {
            throw new BadRequest("a fragment");
        }
        int question = target.indexOf('?');
        String path = normalisedPath(question < 0 ? target : target.substring(0, question));
        String query = question < 0 ? null : target.substring(question + 1);
        if (query != null && hasControlSpaceOrNonAscii(query)) {
            throw new BadRequest("control, space or non-ASCII in the query");
        }
        String host = matchingHost(call.host());
        if (authority != null && !matchingHost(authority).equals(host)) {
            throw new BadRequest("absolute-form target naming another host than Host");
        }
        String forwardedTarget = query == null ? path : path + "?" + query;
        String forwardedHost = forwardedHost(call.host());

        // One connection, one host.
        if (call.sni() != null) {
            String serverName = call.sni().toLowerCase(Locale.ROOT);
            if (!serverName.equals(host) && routes.stream().anyMatch(r -> r.host() != null
                    && hostPatternMatches(r.host(), serverName))) {
                return Verdict.refused(421, "server name " + serverName + " is a configured host, Host is " + host);
            }
        }

        // The most specific host that has routes: exact, then *.domain, then routes without host.
        List<GenRoute> group = routes.stream().filter(r -> host.equals(r.host())).toList();
        if (group.isEmpty()) {
            group = routes.stream().filter(r -> r.host() != null && r.host().startsWith("*.")
                    && hostPatternMatches(r.host(), host)).toList();
        }
        if (group.isEmpty()) {
            group = routes.stream().filter(r -> r.host() == null).toList();
        }
        // Then the longest pathPrefix covering the path, on segment boundaries.
        GenRoute longest = null;
        for (GenRoute r : group) {
            if (underPrefix(r.prefix(), path) && (longest == null || r.prefix().length() > longest.prefix().length())) {
                longest = r;
            }
        }
        if (longest == null) {
            return Verdict.refused(404, "no route for " + host + " " + path);
        }
        // A method the longest prefix does not serve is 405, never a fall-through to a shorter prefix. Routes
        // sharing that prefix are tried in the order they are written.
        GenRoute route = null;
        for (GenRoute r : group) {
            if (r.prefix().equals(longest.prefix()) && serves(r, call.method())) {
                route = r;
                break;
            }
        }
        if (route == null) {
            return Verdict.refused(405, "prefix " + longest.prefix() + " serves no " + call.method());
        }
        String decided = decide(route, identities, call.client(), call.method(), path, now);
        if (decided == null || route.dryRun()) {
            return new Verdict(200, forwardedTarget, forwardedHost, "route " + route.name()
                    + (decided == null ? " grants " + call.client().name() : " is dry-run; would deny: " + decided),
                    route.name());
        }
        return Verdict.refused(403, "route " + route.name() + ": " + decided);
    }

    /** Null when a rule of the route grants the client, else why not. */
    private static String decide(GenRoute route, List<NamedIdentity> identities, Workload client, String method,
            String path, Instant now) {
        if (route.rules().isEmpty()) {
            return "route has no rules";
        }
        // Deny wins, wherever it is listed.
        for (GenRule rule : route.rules()) {
            if (rule.deny() && ruleCovers(rule, method, path) && names(rule, identities, client)) {
                return "denied by a deny rule";
            }
        }
        for (GenRule rule : route.rules()) {
            if (!rule.deny() && ruleCovers(rule, method, path) && names(rule, identities, client)
                    && (rule.expires() == null || now.isBefore(rule.expires()))) {
                return null;
            }
        }
        return "no rule matched";
    }

    private static boolean serves(GenRoute route, String method) {
        // A route without methods serves every method but TRACE; one that names GET serves HEAD too.
        return route.methods().isEmpty() ? !method.equals("TRACE") : route.methods().contains(method)
                || (method.equals("HEAD") && route.methods().contains("GET"));
    }

    private static boolean ruleCovers(GenRule rule, String method, String path) {
        // A rule that names GET covers HEAD too.
        if (!rule.methods().isEmpty() && !rule.methods().contains(method)
                && !(method.equals("HEAD") && rule.methods().contains("GET"))) {
            return false;
        }
        return rule.paths().isEmpty() || rule.paths().stream().anyMatch(p -> patternCovers(p, path));
    }

    /** "/a/*" covers /a/x and below it; "*" is one whole non-empty segment; "/a/" covers what is below /a only. */
    static boolean patternCovers(String pattern, String path) {
        if (pattern.equals("/")) {
            return true;
        }
        StringBuilder regex = new StringBuilder();
        boolean trailingSlash = pattern.endsWith("/");
        String body = trailingSlash ? pattern.substring(0, pattern.length() - 1) : pattern;
        for (String segment : body.substring(1).split("/", -1)) {
            regex.append('/').append(segment.equals("*") ? "[^/]+" : Pattern.quote(segment));
        }
        regex.append(trailingSlash ? "/.*" : "(/.*)?");
        return Pattern.matches(regex.toString(), path);
    }

    private static boolean underPrefix(String prefix, String path) {
        return prefix.equals("/") || path.equals(prefix) || path.startsWith(prefix + "/");
    }

    private static boolean names(GenRule rule, List<NamedIdentity> identities, Workload client) {
        if (rule.deny() && rule.identities().contains("*")) {
            return true;
        }
        return identities.stream().anyMatch(i -> rule.identities().contains(i.name()) && is(client, i));
    }

    /** The README's matchers: spiffeId exact, spiffeIdPrefix on a segment boundary, dnsSan "*." for one label. */
    static boolean is(Workload client, NamedIdentity identity) {
        if (identity.spiffeId() != null) {
            return identity.spiffeId().equals(client.spiffeId());
        }
        if (identity.spiffeIdPrefix() != null) {
            return client.spiffeId().equals(identity.spiffeIdPrefix())
                    || client.spiffeId().startsWith(identity.spiffeIdPrefix() + "/");
        }
        return client.dnsSan() != null && hostPatternMatches(identity.dnsSan(),
                client.dnsSan().toLowerCase(Locale.ROOT));
    }

    /** An exact name, or "*.domain" for exactly one more label. */
    private static boolean hostPatternMatches(String pattern, String name) {
        if (!pattern.startsWith("*.")) {
            return pattern.equals(name);
        }
        String domain = pattern.substring(1);
        if (!name.endsWith(domain)) {
            return false;
        }
        String label = name.substring(0, name.length() - domain.length());
        return !label.isEmpty() && !label.contains(".");
    }

    // ---- the target -------------------------------------------------------------------------------------------

    /**
     * The path as the policy must see it and the backend must get it: escapes of the characters a rule may name
     * decoded, other escapes in upper-case hex, slashes merged, then dot segments removed as RFC 3986 5.2.4 does it,
     * except that climbing above the root is refused. Refused: escapes of "/", "\", ";" and control characters,
     * overlong UTF-8, raw "\" and ";", control, space and non-ASCII bytes, and malformed escapes.
     */
    static String normalisedPath(String raw) throws BadRequest {
        StringBuilder decoded = new StringBuilder();
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c <= 0x20 || c >= 0x7f) {
                throw new BadRequest("control, space or non-ASCII in the path");
            }
            if (c == '\\' || c == ';') {
                throw new BadRequest("raw " + c + " in the path");
            }
            if (c != '%') {
                decoded.append(c);
                continue;
            }
            int b = escapedByte(raw, i);
            if (b < 0) {
                throw new BadRequest("malformed escape");
            }
            if (b == '/' || b == '\\' || b == ';') {
                throw new BadRequest("escaped " + (char) b);
            }
            if (b < 0x20 || b == 0x7f) {
                throw new BadRequest("escaped control character");
            }
            int next = escapedByte(raw, i + 3);
            if (b == 0xc0 || b == 0xc1 || (b == 0xe0 && next >= 0x80 && next < 0xa0)
                    || (b == 0xf0 && next >= 0x80 && next < 0x90)) {
                throw new BadRequest("overlong UTF-8");
            }
            if (DECODED.indexOf(b) >= 0) {
                decoded.append((char) b);
            } else {
                decoded.append(String.format("%%%02X", b));
            }
            i += 2;
        }
        return removeDotSegments(decoded.toString().replaceAll("/{2,}", "/"));
    }

    /** The byte of a "%XY" escape at {@code at}, or -1 when there is none. */
    private static int escapedByte(String s, int at) {
        if (at + 3 > s.length() || s.charAt(at) != '%') {
            return -1;
        }
        int hi = hexDigit(s.charAt(at + 1));
        int lo = hexDigit(s.charAt(at + 2));
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    private static int hexDigit(char c) {
        int i = "0123456789abcdef".indexOf(Character.toLowerCase(c));
        return c < 0x80 ? i : -1;
    }

    /** RFC 3986 5.2.4 for an absolute path, with "/.." above the root refused instead of dropped. */
    private static String removeDotSegments(String path) throws BadRequest {
        String in = path;
        StringBuilder out = new StringBuilder();
        while (!in.isEmpty()) {
            if (in.startsWith("/./")) {
                in = in.substring(2);
            } else if (in.equals("/.")) {
                in = "/";
            } else if (in.startsWith("/../") || in.equals("/..")) {
                if (out.length() == 0) {
                    throw new BadRequest(".. above the root");
                }
                out.setLength(out.lastIndexOf("/"));
                in = in.equals("/..") ? "/" : in.substring(3);
            } else {
                int next = in.indexOf('/', 1);
                int end = next < 0 ? in.length() : next;
                out.append(in, 0, end);
                in = in.substring(end);
            }
        }
        return out.length() == 0 ? "/" : out.toString();
    }

    private static boolean hasControlSpaceOrNonAscii(String s) {
        return s.chars().anyMatch(c -> c <= 0x20 || c >= 0x7f);
    }

    // ---- the host ---------------------------------------------------------------------------------------------

    /**
     * The name routes are matched on: case, one trailing dot and the port ignored. A name with an empty label
     * ("a..b", ".a", "a..") is no host name (RFC 1123): refused, as nginx refuses it, rather than matched as some
     * other name that a backend stripping dots would read as the configured one.
     */
    private static String matchingHost(String header) throws BadRequest {
        String h = header.toLowerCase(Locale.ROOT);
        int colon = h.lastIndexOf(':');
        if (colon >= 0) {
            String port = h.substring(colon + 1);
            if (!port.matches("[0-9]{1,5}") || Integer.parseInt(port) > 65535) {
                throw new BadRequest("invalid port in Host");
            }
            h = h.substring(0, colon);
        }
        if (h.endsWith(".")) {
            h = h.substring(0, h.length() - 1);
        }
        if (h.isEmpty() || !h.matches("[a-z0-9_-]+(\\.[a-z0-9_-]+)*")) {
            throw new BadRequest("not a host name: " + header);
        }
        return h;
    }

    /** What the backend gets as Host: the name lower-cased without its trailing dot, the port as sent. */
    private static String forwardedHost(String header) {
        int colon = header.lastIndexOf(':');
        String name = colon < 0 ? header : header.substring(0, colon);
        String port = colon < 0 ? "" : header.substring(colon);
        name = name.toLowerCase(Locale.ROOT);
        return (name.endsWith(".") ? name.substring(0, name.length() - 1) : name) + port;
    }

    static List<String> describe(Verdict v) {
        List<String> lines = new ArrayList<>();
        lines.add(v.status() + " (" + v.why() + ")");
        if (v.target() != null) {
            lines.add("backend receives " + v.target() + " with Host " + v.host());
        }
        return lines;
    }
}
