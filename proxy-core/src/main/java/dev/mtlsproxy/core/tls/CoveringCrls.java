package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.AlgorithmStrength;
import dev.mtlsproxy.config.CrlDistributionPoint;
import dev.mtlsproxy.config.IssuingDistributionPoint;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import javax.security.auth.x500.X500Principal;

/**
 * Which of an issuer's CRLs speaks for one certificate: RFC 5280 6.3.3 as OpenSSL applies it (x509_vfy.c:
 * get_crl_sk, crl_crldp_check, check_crl). A CRL counts for a certificate when
 * <ul>
 *   <li>its signature verifies with the issuer's key (6.3.3 (g)), which may sign CRLs (its keyUsage, when present,
 *       has cRLSign: 6.3.3 (f)), with an algorithm and key that are not weak ({@link AlgorithmStrength});</li>
 *   <li>its scope covers the certificate (6.3.3 (b)(2)): its issuingDistributionPoint, if any, is not for CA
 *       certificates only when the certificate is an end entity, nor for end entities only when it is a CA, nor for
 *       attribute certificates; and when it names a distribution point, one of the certificate's cRLDistributionPoints
 *       has that name;</li>
 *   <li>it has been issued: thisUpdate is not in the future.</li>
 * </ul>
 * Of those, the newest (thisUpdate) is the certificate's CRL; between two equally new, one that lists the
 * certificate wins. Delta, indirect and reason-partitioned CRLs and unhandled critical extensions never get here: they
 * are refused at load ({@link dev.mtlsproxy.config.Crls}).
 *
 * <p>Immutable after construction but for a cache of signature checks; thread-safe.
 */
final class CoveringCrls {

    /** The chosen CRL, or null with what kept each candidate out (null when the issuer has none). */
    record Choice(X509CRL crl, String whyNone) {
    }

    /** keyUsage bit 6 (RFC 5280 4.2.1.3). */
    private static final int CRL_SIGN = 6;

    private final Map<X509CRL, IssuingDistributionPoint> scopes;
    /** CRL signature checks by (CRL, issuer key): a signature is verified once, not per handshake. */
    private final Map<SignatureKey, Boolean> verifiedSignatures = new ConcurrentHashMap<>();

    /** @param crls every CRL that may be asked about, each already accepted by {@code Crls.read} */
    CoveringCrls(Collection<X509CRL> crls) {
        Map<X509CRL, IssuingDistributionPoint> s = new HashMap<>();
        for (X509CRL crl : crls) {
            IssuingDistributionPoint idp = IssuingDistributionPoint.of(crl);
            if (idp != null) {
                s.put(crl, idp);
            }
        }
        this.scopes = Map.copyOf(s);
    }

    /**
     * The CRL of {@code certificate} among its issuer's.
     *
     * @param candidates the CRLs with the issuer's name, or null
     */
    Choice choose(X509Certificate certificate, X509Certificate issuer, List<X509CRL> candidates, Instant now) {
        if (candidates == null || candidates.isEmpty()) {
            return new Choice(null, null);
        }
        if (!maySignCrls(issuer)) {
            return new Choice(null, "its keyUsage lacks cRLSign");
        }
        List<CrlDistributionPoint> points;
        try {
            points = CrlDistributionPoint.of(certificate);
        } catch (IllegalArgumentException e) {
            return new Choice(null, "the certificate's cRLDistributionPoints is unreadable");
        }
        Set<String> ignored = new LinkedHashSet<>();
        X509CRL best = null;
        for (X509CRL crl : candidates) {
            String why = whyNot(crl, certificate, issuer.getPublicKey(), points, now);
            if (why != null) {
                ignored.add(why);
            } else if (best == null || crl.getThisUpdate().after(best.getThisUpdate())
                    || (crl.getThisUpdate().equals(best.getThisUpdate()) && crl.isRevoked(certificate))) {
                best = crl;
            }
        }
        return best != null ? new Choice(best, null) : new Choice(null, String.join("; ", ignored));
    }

    /**
     * Why {@code crl} counts for no certificate {@code issuer} issued, as of {@code now}, or null when it counts for
     * those in its scope: the rules of {@link #choose} that do not depend on the certificate, worded for the CRL.
     */
    String whyNeverCounts(X509CRL crl, X509Certificate issuer, Instant now) {
        if (!maySignCrls(issuer)) {
            return "its issuer's keyUsage lacks cRLSign";
        }
        if (!signedBy(crl, issuer.getPublicKey())) {
            return "signed by another key than its issuer's";
        }
        String weakness = AlgorithmStrength.weakness(crl, issuer.getPublicKey());
        if (weakness != null) {
            return "weak " + weakness;
        }
        return notYetCounting(crl, now);
    }

    /** Why {@code crl} counts for nothing yet, as of {@code now}, or null: one issued in the future (6.3.3). */
    static String notYetCounting(X509CRL crl, Instant now) {
        return notYetIssued(crl, now)
                ? "thisUpdate " + crl.getThisUpdate().toInstant() + " is in the future; it counts from then" : null;
    }

    /** RFC 5280 6.3.3 (f): a CA whose keyUsage, when present, lacks cRLSign signs no CRL that counts. */
    private static boolean maySignCrls(X509Certificate issuer) {
        boolean[] keyUsage = issuer.getKeyUsage();
        return keyUsage == null || (keyUsage.length > CRL_SIGN && keyUsage[CRL_SIGN]);
    }

    private static boolean notYetIssued(X509CRL crl, Instant now) {
        return crl.getThisUpdate().toInstant().isAfter(now);
    }

    /** Why {@code crl} does not count for the certificate, or null when it does. */
    private String whyNot(X509CRL crl, X509Certificate certificate, PublicKey issuerKey,
            List<CrlDistributionPoint> points, Instant now) {
        if (!signedBy(crl, issuerKey)) {
            return "a CRL signed by another key";
        }
        String weakness = AlgorithmStrength.weakness(crl, issuerKey);
        if (weakness != null) {
            return "a CRL with weak " + weakness;
        }
        String outOfScope = outOfScope(crl, certificate, points);
        if (outOfScope != null) {
            return outOfScope;
        }
        if (notYetIssued(crl, now)) {
            return "a CRL not yet valid, thisUpdate " + crl.getThisUpdate().toInstant();
        }
        return null;
    }

    /** OpenSSL's crl_crldp_check, for direct CRLs: why the CRL's scope leaves the certificate out, or null. */
    private String outOfScope(X509CRL crl, X509Certificate certificate, List<CrlDistributionPoint> points) {
        IssuingDistributionPoint idp = scopes.get(crl);
        if (idp != null) {
            if (idp.onlyAttributeCerts()) {
                return "a CRL for attribute certificates only";
            }
            boolean ca = certificate.getBasicConstraints() >= 0;
            if (ca && idp.onlyUserCerts()) {
                return "a CRL for end-entity certificates only";
            }
            if (!ca && idp.onlyCaCerts()) {
                return "a CRL for CA certificates only";
            }
        }
        X500Principal crlIssuer = crl.getIssuerX500Principal();
        for (CrlDistributionPoint point : points) {
            if (point.publishedBy(crlIssuer) && point.matches(idp)) {
                // RFC 5280 6.3.3 (d): a point limited to some reasons needs other CRLs for the rest; we read one
                return point.allReasons() ? null : "a CRL for a distribution point limited to some reasons";
            }
        }
        return idp == null || !idp.named() ? null : "a CRL for another distribution point";
    }

    private boolean signedBy(X509CRL crl, PublicKey key) {
        return verifiedSignatures.computeIfAbsent(new SignatureKey(crl, key), k -> {
            try {
                crl.verify(key);
                return true;
            } catch (GeneralSecurityException e) {
                return false;
            }
        });
    }

    /** Identity of the CRL object (one per generation) and equality of the key. */
    private record SignatureKey(X509CRL crl, PublicKey key) {
        @Override
        public boolean equals(Object o) {
            return o instanceof SignatureKey k && k.crl == crl && k.key.equals(key);
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(crl) * 31 + key.hashCode();
        }
    }
}
