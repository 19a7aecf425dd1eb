package dev.mtlsproxy.config;

import java.security.cert.X509Certificate;
import java.util.Collection;

/**
 * A CA file holding an intermediate CA with name constraints but not its issuer configures a CA that can vouch for
 * nothing: the JDK's path validation applies no constraints of the CA a path starts from, so the proxy judges chains
 * under such a CA up to its issuer, and without one refuses them all rather than let it vouch for any name (README,
 * Security model). Reported at load, where the file and the certificate can be named, instead of as a refusal on
 * every handshake.
 */
final class ConstrainedIntermediates {

    private static final String NAME_CONSTRAINTS_OID = "2.5.29.30";

    private ConstrainedIntermediates() {
    }

    /**
     * Why {@code ca} can vouch for nothing when trusted together with {@code trusted}, or null when it can.
     *
     * @param where what holds {@code trusted}, for the message: "no trust anchor", "no file of serverCAs"
     */
    static String withoutIssuer(X509Certificate ca, Collection<X509Certificate> trusted, String where) {
        if (ca.getSubjectX500Principal().equals(ca.getIssuerX500Principal())
                || ca.getExtensionValue(NAME_CONSTRAINTS_OID) == null) {
            return null;
        }
        for (X509Certificate issuer : trusted) {
            if (Issuers.issued(issuer, ca)) {
                return null;
            }
        }
        return "has name constraints and is not a root; the proxy cannot apply them without its issuer ("
                + ca.getIssuerX500Principal().getName() + "), which " + where + " holds, so it would refuse every"
                + " chain through it (add its issuer)";
    }
}
