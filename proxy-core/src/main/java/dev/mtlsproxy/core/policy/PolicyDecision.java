package dev.mtlsproxy.core.policy;

/**
 * The outcome of checking one request.
 *
 * @param outcome  what to do
 * @param route    the matched route, null for {@link Outcome#NO_ROUTE}
 * @param identity the name of the configured identity that was granted, null unless allowed
 */
public record PolicyDecision(Outcome outcome, Route route, String identity) {

    public enum Outcome {
        ALLOW, DENY, NO_ROUTE, METHOD_NOT_ALLOWED
    }

    public boolean allowed() {
        return outcome == Outcome.ALLOW;
    }

    /**
     * The rule that decided, as logs and the decisions metric name it: {@code allow:<identity>} for a grant,
     * {@code default-deny} when no grant matched, {@code -} when no policy applied (no route, wrong method).
     */
    public String rule() {
        return switch (outcome) {
            case ALLOW -> "allow:" + identity;
            case DENY -> "default-deny";
            default -> "-";
        };
    }

    /** Route name for logs and metrics, {@code "-"} when none matched. */
    public String routeName() {
        return route == null ? "-" : route.name();
    }
}
