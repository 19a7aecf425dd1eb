package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.security.cert.X509CRL;
import java.security.cert.X509CRLEntry;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The CRL files of a trust anchor, read and held to what revocation checking can apply. Every CRL is taken as the
 * complete list of its issuer's revocations within its scope, so a CRL that is not one is refused here, at load,
 * rather than misread at a handshake: a delta CRL (it lists only the changes since its base), an indirect one
 * (entries for other issuers' certificates), one partitioned by reason, and one with a critical extension we do not
 * handle, on the CRL or on an entry (RFC 5280 5.2, 5.3: such a CRL must not be used; OpenSSL fails the same chains
 * with X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION).
 */
public final class Crls {

    static final String DELTA_CRL_INDICATOR = "2.5.29.27";
    static final String AUTHORITY_KEY_IDENTIFIER = "2.5.29.35";
    static final String CERTIFICATE_ISSUER = "2.5.29.29";
    /** Critical CRL extensions whose meaning is applied: the scope (issuingDistributionPoint), the signer's key id. */
    private static final Set<String> HANDLED_CRITICAL = Set.of(IssuingDistributionPoint.OID, AUTHORITY_KEY_IDENTIFIER);

    private Crls() {
    }

    /**
     * The CRLs of a file, PEM or DER.
     *
     * @throws PemException when the file is unreadable, holds no valid CRL, or holds one that cannot be applied
     */
    public static List<X509CRL> read(Path file) throws PemException {
        List<X509CRL> crls = Pem.readCrls(file);
        for (int i = 0; i < crls.size(); i++) {
            String unsupported = unsupported(crls.get(i));
            if (unsupported != null) {
                throw new PemException(file, (crls.size() > 1 ? "X509 CRL block " + (i + 1) + ": " : "")
                        + unsupported);
            }
        }
        return crls;
    }

    /** Why this CRL cannot be taken as its issuer's complete, direct list; null when it can. */
    static String unsupported(X509CRL crl) {
        // Recognised by presence, critical or not (RFC 5280 requires both critical): OpenSSL reads them either way.
        if (crl.getExtensionValue(DELTA_CRL_INDICATOR) != null) {
            return "a delta CRL (deltaCRLIndicator): not supported, give the complete CRL";
        }
        IssuingDistributionPoint idp;
        try {
            idp = IssuingDistributionPoint.of(crl);
        } catch (IllegalArgumentException e) {
            return "issuingDistributionPoint is not valid (" + e.getMessage() + ")";
        }
        if (idp != null) {
            if (idp.indirect()) {
                return "an indirect CRL (issuingDistributionPoint indirectCRL): not supported";
            }
            if (idp.someReasons()) {
                return "a CRL for some revocation reasons only (issuingDistributionPoint onlySomeReasons):"
                        + " not supported, give the complete CRL";
            }
            if (idp.relativeName()) {
                return "issuingDistributionPoint nameRelativeToCRLIssuer: not supported, name it in full";
            }
            int only = (idp.onlyUserCerts() ? 1 : 0) + (idp.onlyCaCerts() ? 1 : 0) + (idp.onlyAttributeCerts() ? 1 : 0);
            if (only > 1) {
                return "issuingDistributionPoint sets more than one of onlyContainsUserCerts, onlyContainsCACerts"
                        + " and onlyContainsAttributeCerts";
            }
        }
        Set<String> critical = new TreeSet<>(orEmpty(crl.getCriticalExtensionOIDs()));
        critical.removeAll(HANDLED_CRITICAL);
        if (!critical.isEmpty()) {
            return "unhandled critical extension " + String.join(", ", critical);
        }
        Set<? extends X509CRLEntry> entries = crl.getRevokedCertificates();
        for (X509CRLEntry entry : entries == null ? Set.<X509CRLEntry>of() : entries) {
            Set<String> entryCritical = orEmpty(entry.getCriticalExtensionOIDs());
            if (entryCritical.contains(CERTIFICATE_ISSUER)) {
                return "an indirect CRL (certificateIssuer on the entry for serial "
                        + entry.getSerialNumber().toString(16) + "): not supported";
            }
            if (!entryCritical.isEmpty()) {
                return "unhandled critical extension " + String.join(", ", new TreeSet<>(entryCritical))
                        + " on the entry for serial " + entry.getSerialNumber().toString(16);
            }
        }
        return null;
    }

    private static Set<String> orEmpty(Set<String> oids) {
        return oids == null ? Set.of() : oids;
    }
}
