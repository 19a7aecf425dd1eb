package dev.mtlsproxy.core.policy;

/** Why a request was refused, as the audit log and {@code explain} say it. Closed, so it can label metrics too. */
public enum DenyReason {
    NONE("-"),
    NO_ROUTE("no route matched"),
    METHOD_NOT_ALLOWED("method not served by the route"),
    MISDIRECTED("TLS server name and Host name different hosts"),
    NO_RULES("route has no rules"),
    NO_RULE_MATCHED("no rule matched"),
    DENIED_BY_RULE("denied by rule"),
    GRANT_EXPIRED("grant expired"),
    CERTIFICATE_LIFETIME_TOO_LONG("certificate lifetime too long"),
    CERTIFICATE_EXPIRES_TOO_SOON("certificate expires too soon"),
    CERTIFICATE_KEY_TYPE("certificate key type not accepted"),
    CERTIFICATE_NO_CLIENT_AUTH_EKU("certificate lacks the clientAuth extended key usage");

    private final String text;

    DenyReason(String text) {
        this.text = text;
    }

    public String text() {
        return text;
    }

    /** Failures of the certificate's own properties rank below a grant that matched but lapsed. */
    boolean isCertificateRequirement() {
        return name().startsWith("CERTIFICATE_");
    }
}
