package dev.mtlsproxy.core.tls;

import java.security.cert.CertPathValidatorException;
import java.security.cert.PKIXReason;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

/**
 * A path the JDK's PKIX threw a RuntimeException on instead of judging it: refused, never let through and never let
 * escape the trust manager, where netty-tcnative would report it only as "General OpenSslEngine problem".
 *
 * <p>The one such path known is a CA below another whose name constraints permit no name of some type that the
 * other's permit (one only {@code partner.test}, the one below only {@code backend.test}). RFC 5280 6.1.4 (g) then
 * leaves no name of that type permitted; JDK 17 means to say so by excluding every name of the type, but cannot make
 * the empty DNS, URI or email name that stands for it (or, for IP addresses, dereferences null) and throws from
 * {@code CertPathValidator.validate}, whatever the leaf holds. So a path that holds two name-constrained CAs and
 * makes the JDK throw is refused for their constraints, even the path of a leaf without any name of that type
 * (which OpenSSL and Go would accept): the JDK cannot judge the rest of it.
 */
final class UnjudgedPathException extends CertPathValidatorException {

    private static final long serialVersionUID = 1L;
    private static final String NAME_CONSTRAINTS_OID = "2.5.29.30";

    private UnjudgedPathException(String message, Reason reason) {
        super(message, null, null, -1, reason);
    }

    /**
     * @param thrown what the JDK threw; kept as suppressed rather than as the cause, so that a log line made of the
     *               deepest cause shows why, not the JDK's internal error
     * @param path   the certificates the JDK validated, in either order
     */
    static UnjudgedPathException of(RuntimeException thrown, X509Certificate... path) {
        List<String> constrained = new ArrayList<>();
        for (X509Certificate c : path) {
            if (c.getExtensionValue(NAME_CONSTRAINTS_OID) != null) {
                constrained.add(c.getSubjectX500Principal().getName());
            }
        }
        UnjudgedPathException refused = constrained.size() >= 2
                ? new UnjudgedPathException("the name constraints of " + String.join(" and ", constrained)
                        + " permit no name of one type in common", PKIXReason.INVALID_NAME)
                : new UnjudgedPathException("the JDK's path validation failed ("
                        + thrown.getClass().getSimpleName() + ")", BasicReason.UNSPECIFIED);
        refused.addSuppressed(thrown);
        return refused;
    }
}
