package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.core.identity.PeerIdentity;
import java.time.Instant;

/**
 * The outcome of checking one request.
 *
 * @param outcome  what the policy says
 * @param route    the matched route, null for {@link Outcome#NO_ROUTE} and {@link Outcome#MISDIRECTED}
 * @param rule     the 1-based number, within the route, of the rule that decided; 0 when no rule did
 * @param identity the configured identity that was granted (allow) or denied by name (deny); null otherwise
 * @param reason   why, for refusals; {@link DenyReason#NONE} when allowed
 * @param detail   specifics for the audit log (which limit, which instant); empty when none
 */
public record PolicyDecision(
        Outcome outcome, Route route, int rule, String identity, DenyReason reason, String detail) {

    public enum Outcome {
        ALLOW, DENY, NO_ROUTE, METHOD_NOT_ALLOWED, MISDIRECTED;

        /** The lower-case label, computed once: labels are read on every request. */
        private final String label = name().toLowerCase(java.util.Locale.ROOT);
    }

    /** {@code rule-N} for the rule numbers that real routes have, so the per-request label allocates nothing. */
    private static final String[] RULE_LABELS = new String[64];

    static {
        for (int i = 1; i < RULE_LABELS.length; i++) {
            RULE_LABELS[i] = "rule-" + i;
        }
    }

    static final PolicyDecision NO_ROUTE =
            new PolicyDecision(Outcome.NO_ROUTE, null, 0, null, DenyReason.NO_ROUTE, "");
    static final PolicyDecision MISDIRECTED =
            new PolicyDecision(Outcome.MISDIRECTED, null, 0, null, DenyReason.MISDIRECTED, "");

    public boolean allowed() {
        return outcome == Outcome.ALLOW;
    }

    /** A refusal on a dry-run route: the proxy forwards the request and only logs and counts this decision. */
    public boolean dryRunDeny() {
        return outcome == Outcome.DENY && route != null && route.dryRun();
    }

    /** Whether the proxy forwards the request: allowed, or a deny it only reports. */
    public boolean forwards() {
        return allowed() || dryRunDeny();
    }

    /**
     * The rule that decided, as logs and the decisions metric name it: {@code rule-N}, {@code default-deny} when
     * no rule applied, {@code -} when no policy applied (no route, wrong method, misdirected).
     */
    public String ruleLabel() {
        if (rule > 0) {
            return rule < RULE_LABELS.length ? RULE_LABELS[rule] : "rule-" + rule;
        }
        return outcome == Outcome.DENY ? "default-deny" : "-";
    }

    /** The decision label of logs and metrics: allow, deny, dry_run_deny, no_route, method_not_allowed, ... */
    public String label() {
        return dryRunDeny() ? "dry_run_deny" : outcome.label;
    }

    /** The reason as one phrase: "denied by rule 2", "grant expired (rule 1)", "no rule matched". */
    public String reasonText() {
        return switch (reason) {
            case DENIED_BY_RULE -> "denied by rule " + rule;
            case GRANT_EXPIRED -> "grant expired (rule " + rule + ")";
            default -> reason.text();
        };
    }

    /**
     * For an allow, the first instant at which time alone ends it: the grant expires, or the client's certificate
     * comes within a remaining lifetime its route or identity requires. Null when neither can happen, and for every
     * other outcome. A request is over long before; a WebSocket tunnel, one request that lasts, is judged again then.
     */
    public Instant lapsesAt(PeerIdentity peer) {
        if (!allowed() || rule == 0) {
            return null;
        }
        Rule granted = route.rules().get(rule - 1);
        Instant at = earlier(granted.expires(), route.check().lapsesAt(peer));
        for (Identity named : granted.identities()) {
            if (named.name().equals(identity)) {
                at = earlier(at, named.check().lapsesAt(peer));
            }
        }
        return at;
    }

    private static Instant earlier(Instant a, Instant b) {
        return a == null ? b : b == null || a.isBefore(b) ? a : b;
    }

    /** Route name for logs and metrics, {@code "-"} when none matched. */
    public String routeName() {
        return route == null ? "-" : route.name();
    }
}
