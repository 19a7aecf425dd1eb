package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.Issuers;
import java.security.GeneralSecurityException;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.Certificate;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.CertificateParsingException;
import java.security.cert.PKIXCertPathChecker;
import java.security.cert.PKIXCertPathValidatorResult;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXReason;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Date;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The rules a trusted CA is held to on both sides: the CAs client chains end at, and the {@code serverCAs} backend
 * chains end at. The JDK's PKIX takes a trust anchor as given: it checks neither the CA certificate's own dates nor
 * its extended key usage, path length and name constraints. OpenSSL and Go do, and a CA restricted to one domain, or
 * to issuing no intermediates, is meant to be.
 *
 * <p>The usage is a parameter rather than left to each side: the rule is the same (a CA that restricts its usage
 * must allow the chain's purpose), only the purpose differs, and the second validation of a constrained anchor needs
 * the same checker anyway, or PKIX would refuse a critical EKU extension as unrecognised. Each side turns the
 * exceptions into its own refusal.
 */
final class AnchorRules {

    /** What a chain is verified for; a CA whose EKU names neither this nor anyExtendedKeyUsage is refused. */
    enum Usage {
        CLIENT_AUTH("1.3.6.1.5.5.7.3.2", "clientAuth"),
        SERVER_AUTH("1.3.6.1.5.5.7.3.1", "serverAuth");

        private final String oid;
        private final String display;

        Usage(String oid, String display) {
            this.oid = oid;
            this.display = display;
        }
    }

    private static final String EKU_OID = "2.5.29.37";
    private static final String ANY_EKU = "2.5.29.37.0";
    private static final String NAME_CONSTRAINTS_OID = "2.5.29.30";

    private AnchorRules() {
    }

    /**
     * The anchor's own dates at {@code now} and, if it restricts its usage, its extended key usage.
     *
     * @throws CertPathValidatorException with {@link PKIXReason#INVALID_KEY_USAGE} when the EKU excludes {@code usage}
     */
    static void checkAnchor(X509Certificate anchor, Date now, Usage usage) throws CertificateExpiredException,
            CertificateNotYetValidException, CertPathValidatorException {
        anchor.checkValidity(now);
        new UsageChecker(usage).check(anchor, new HashSet<>());
    }

    /**
     * For an anchor with a path length or name constraints, validates the path again with the anchor on top, where
     * PKIX applies them as it does to any CA (a self-issued certificate does not count towards a path length, and its
     * own names are exempt from its constraints). Nothing to do for an unconstrained anchor, which most are.
     *
     * @param path the path PKIX accepted below {@code anchor}, leaf first; empty when the leaf is the anchor
     */
    static void checkConstraints(List<X509Certificate> path, X509Certificate anchor, Date now, Usage usage)
            throws GeneralSecurityException {
        int pathLength = anchor.getBasicConstraints();
        boolean limited = pathLength >= 0 && pathLength != Integer.MAX_VALUE;
        boolean namesConstrained = anchor.getExtensionValue(NAME_CONSTRAINTS_OID) != null;
        if (!anchor.getSubjectX500Principal().equals(anchor.getIssuerX500Principal())) {
            checkBelowItsRoot(path, anchor, limited, namesConstrained);
            return;
        }
        if (limited || namesConstrained) {
            List<X509Certificate> withAnchor = new ArrayList<>(path);
            withAnchor.add(anchor);
            validate(withAnchor, Set.of(new TrustAnchor(anchor, null)), now, usage);
        }
    }

    /**
     * An intermediate CA configured as the anchor itself, its root left out. PKIX cannot put it on top of the path as
     * it does a root, for nothing trusted signed it, and takes a trust anchor's own constraints as given: its path
     * length is counted here instead. Its name constraints cannot be applied without re-implementing them, and a
     * critical extension that cannot be processed fails the path (RFC 5280 4.2), so such a CA vouches for nothing;
     * its root, configured instead, applies them.
     */
    private static void checkBelowItsRoot(List<X509Certificate> path, X509Certificate anchor, boolean limited,
            boolean namesConstrained) throws CertPathValidatorException {
        if (namesConstrained) {
            throw new CertPathValidatorException("the name constraints of trusted CA "
                    + anchor.getSubjectX500Principal().getName() + ", which is not a root, cannot be applied"
                    + " (configure its root instead)", null, null, -1, PKIXReason.UNRECOGNIZED_CRIT_EXT);
        }
        if (limited) {
            // RFC 5280 6.1.4 (l): self-issued intermediates do not count; the leaf is no intermediate.
            long intermediates = path.stream().skip(1)
                    .filter(c -> !c.getSubjectX500Principal().equals(c.getIssuerX500Principal())).count();
            if (intermediates > anchor.getBasicConstraints()) {
                throw new CertPathValidatorException("more intermediates than the path length of trusted CA "
                        + anchor.getSubjectX500Principal().getName() + " allows", null, null, -1,
                        PKIXReason.PATH_TOO_LONG);
            }
        }
    }

    /**
     * When {@code anchor} is a CA whose constraints PKIX cannot apply as an anchor (not self-issued, with name
     * constraints) and a trusted CA issued it, as when a bundle holds a whole chain pasted in: the path through it,
     * to be validated up to that issuer instead, where PKIX applies its constraints as it does to any CA of a path.
     * OpenSSL builds such a path to the root anyway, and Go accepts any path that ends at a trusted CA; judging the
     * pinned CA alone would refuse a chain its root vouches for. Null when there is nothing to lift: the anchor is
     * judged itself (an unconstrained intermediate, with its path length counted by hand, ends the path as Go lets
     * it), and an issuer already on the path (CAs cross-signing each other) ends the climb.
     *
     * @param path    the path below {@code anchor}, leaf first
     * @param trusted every CA the side trusts
     */
    static List<X509Certificate> throughTrustedIssuer(List<X509Certificate> path, X509Certificate anchor,
            Collection<X509Certificate> trusted) {
        if (anchor.getSubjectX500Principal().equals(anchor.getIssuerX500Principal())
                || anchor.getExtensionValue(NAME_CONSTRAINTS_OID) == null || path.contains(anchor)) {
            return null;
        }
        for (X509Certificate issuer : trusted) {
            if (Issuers.issued(issuer, anchor) && !path.contains(issuer)) {
                List<X509Certificate> through = new ArrayList<>(path);
                through.add(anchor);
                return through;
            }
        }
        return null;
    }

    /**
     * PKIX path validation at {@code now}, without revocation (each side has its own), requiring {@code usage} of
     * every certificate of the path that carries an EKU extension.
     *
     * @throws UnjudgedPathException when the JDK throws rather than judge the path
     */
    static PKIXCertPathValidatorResult validate(List<X509Certificate> path, Set<TrustAnchor> anchors, Date now,
            Usage usage) throws GeneralSecurityException {
        X509Certificate[] checked = CertificateCopies.forPkix(path.toArray(X509Certificate[]::new));
        CertPath certPath = CertificateFactory.getInstance("X.509").generateCertPath(List.of(checked));
        PKIXParameters params = new PKIXParameters(anchors);
        params.setRevocationEnabled(false);
        params.setDate(now);
        params.addCertPathChecker(new UsageChecker(usage));
        try {
            return (PKIXCertPathValidatorResult) CertPathValidator.getInstance("PKIX").validate(certPath, params);
        } catch (RuntimeException e) {
            throw UnjudgedPathException.of(e, checked);
        }
    }

    /**
     * Requires the usage (or anyExtendedKeyUsage) in every certificate that carries an EKU extension. Claiming the
     * EKU OID also stops PKIX from rejecting a critical EKU as "unrecognised".
     */
    private static final class UsageChecker extends PKIXCertPathChecker {

        private final Usage usage;

        UsageChecker(Usage usage) {
            this.usage = usage;
        }

        @Override
        public void init(boolean forward) {
            // Stateless: each certificate is judged on its own extension.
        }

        @Override
        public boolean isForwardCheckingSupported() {
            return true;
        }

        @Override
        public Set<String> getSupportedExtensions() {
            return Set.of(EKU_OID);
        }

        @Override
        public void check(Certificate cert, Collection<String> unresolvedCritExts) throws CertPathValidatorException {
            unresolvedCritExts.remove(EKU_OID);
            List<String> usages;
            try {
                usages = ((X509Certificate) cert).getExtendedKeyUsage();
            } catch (CertificateParsingException e) {
                throw new CertPathValidatorException("unreadable extended key usage", e, null, -1,
                        PKIXReason.INVALID_KEY_USAGE);
            }
            if (usages != null && !usages.contains(usage.oid) && !usages.contains(ANY_EKU)) {
                throw new CertPathValidatorException("extended key usage does not allow " + usage.display, null,
                        null, -1, PKIXReason.INVALID_KEY_USAGE);
            }
        }
    }
}
