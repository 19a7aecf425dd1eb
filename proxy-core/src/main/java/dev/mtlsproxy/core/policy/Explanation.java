package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.core.http.Hosts;
import dev.mtlsproxy.core.http.RequestTarget;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What the proxy would do with one request from one client, and why, line by line: the engine of
 * {@code mtls-proxy explain} and {@code mtls-proxy test}. It runs the request through the same normalisation and
 * the same {@link Policy#decide} as the proxy, so the tools cannot disagree with it.
 *
 * @param verdict  {@code allow}, {@code deny}, {@code not-found}, {@code method-not-allowed}, {@code bad-request} or
 *                 {@code misdirected}: the words a policy test's {@code expect} uses
 * @param decision the policy decision; null for {@code bad-request}
 * @param lines    the explanation, in order
 */
public record Explanation(String verdict, PolicyDecision decision, List<String> lines) {

    /**
     * @param method any case
     * @param url    {@code https://host/path?query}, or an origin-form {@code /path} (no host: only routes for any host)
     * @param sni    the server name the client sends; null to use the URL's host, as curl and browsers do
     */
    public static Explanation of(Policy policy, PeerIdentity peer, String method, String url, String sni,
            Instant now) {
        List<String> lines = new ArrayList<>();
        lines.add("client:     " + peer.displayName() + "  (subject " + peer.subject() + ")");
        lines.add("anchor:     " + (peer.trustAnchor() == null ? "none (the chain does not verify to any anchor)"
                : peer.trustAnchor()));
        List<String> identities = policy.identitiesOf(peer);
        lines.add("identities: " + (identities.isEmpty() ? "none" : String.join(", ", identities)));
        RequestTarget target;
        try {
            target = RequestTarget.parse(url);
        } catch (RequestTarget.InvalidTargetException e) {
            lines.add("request:    " + method + " " + url);
            lines.add("decision:   BAD REQUEST (400) - " + e.getMessage());
            return new Explanation("bad-request", null, List.copyOf(lines));
        }
        String host = target.authority() == null ? "" : Hosts.normalise(target.authority());
        if (host == null) {
            lines.add("decision:   BAD REQUEST (400) - invalid host " + target.authority());
            return new Explanation("bad-request", null, List.copyOf(lines));
        }
        String serverName = sni != null ? Hosts.normalise(sni) : host.isEmpty() ? null : host;
        PolicyRequest request = new PolicyRequest(method.toUpperCase(Locale.ROOT), host, target.path(), serverName);
        lines.add("request:    " + request.method() + " " + (host.isEmpty() ? "(any host)" : host) + " "
                + target.path() + (serverName == null ? "" : "  (server name " + serverName + ")"));
        PolicyTrace.Recording trace = new PolicyTrace.Recording();
        PolicyDecision decision = policy.decide(peer, request, now, trace);
        lines.addAll(trace.lines());
        String verdict = switch (decision.outcome()) {
            case ALLOW -> "allow";
            case DENY -> "deny";
            case NO_ROUTE -> "not-found";
            case METHOD_NOT_ALLOWED -> "method-not-allowed";
            case MISDIRECTED -> "misdirected";
        };
        lines.add("decision:   " + describe(decision));
        return new Explanation(verdict, decision, List.copyOf(lines));
    }

    private static String describe(PolicyDecision d) {
        return switch (d.outcome()) {
            case ALLOW -> "ALLOW (rule " + d.rule() + ", as " + d.identity() + ")";
            case DENY -> (d.dryRunDeny() ? "DENY, dry-run: forwarded and reported (403 once enforced) - "
                    : "DENY (403) - ") + d.reasonText() + (d.detail().isEmpty() ? "" : " (" + d.detail() + ")");
            case NO_ROUTE -> "NOT FOUND (404) - no route matched";
            case METHOD_NOT_ALLOWED -> "METHOD NOT ALLOWED (405) - the route serves " + d.route().servedMethods();
            case MISDIRECTED -> "MISDIRECTED (421) - the server name and the Host header name different hosts";
        };
    }
}
