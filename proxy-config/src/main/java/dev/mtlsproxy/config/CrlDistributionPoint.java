package dev.mtlsproxy.config;

import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import javax.security.auth.x500.X500Principal;

/**
 * One entry of a certificate's cRLDistributionPoints extension (RFC 5280 4.2.1.13): where the CRL that covers the
 * certificate is published, and by whom.
 *
 * @param fullNames  the distribution point's fullName, as {@link GeneralNameText}; empty when it has none
 * @param named      the entry names its distribution point (in full or relative to the CRL issuer)
 * @param crlIssuers the cRLIssuer names, as {@link GeneralNameText}; empty when the certificate's issuer signs the CRL
 * @param allReasons no reasons field, or one listing every reason: the CRL at this point covers every revocation
 */
public record CrlDistributionPoint(Set<String> fullNames, boolean named, Set<String> crlIssuers,
        boolean allReasons) {

    static final String OID = "2.5.29.31";

    public CrlDistributionPoint {
        fullNames = Set.copyOf(fullNames);
        crlIssuers = Set.copyOf(crlIssuers);
    }

    /**
     * The certificate's distribution points, in order; empty when it has none.
     *
     * @throws IllegalArgumentException when the extension is not valid DER of its type
     */
    public static List<CrlDistributionPoint> of(X509Certificate certificate) {
        Der.Element points = Der.extension(certificate.getExtensionValue(OID));
        if (points == null) {
            return List.of();
        }
        if (points.tag() != Der.SEQUENCE) {
            throw new IllegalArgumentException("not a SEQUENCE");
        }
        List<CrlDistributionPoint> all = new ArrayList<>();
        for (Der.Element point : points.children()) {
            if (point.tag() != Der.SEQUENCE) {
                throw new IllegalArgumentException("distribution point is not a SEQUENCE");
            }
            Set<String> fullNames = Set.of();
            boolean named = false;
            Set<String> issuers = Set.of();
            boolean allReasons = true;
            for (Der.Element field : point.children()) {
                switch (field.contextNumber()) {
                    case 0 -> {
                        named = true;
                        Der.Element name = Der.one(field.content());
                        if (name.contextNumber() == 0) {
                            fullNames = GeneralNameText.all(name);
                        }
                        // nameRelativeToCRLIssuer: named, but matched by no CRL's full name (fails closed)
                    }
                    case 1 -> allReasons = allReasons(field.content());
                    case 2 -> issuers = GeneralNameText.all(field);
                    default -> throw new IllegalArgumentException("unknown field [" + field.contextNumber() + "]");
                }
            }
            all.add(new CrlDistributionPoint(fullNames, named, issuers, allReasons));
        }
        return List.copyOf(all);
    }

    /**
     * Whether a CRL by {@code crlIssuer} is published at this point: its cRLIssuer names that issuer, or it names none
     * (the certificate's own issuer publishes).
     */
    public boolean publishedBy(X500Principal crlIssuer) {
        return crlIssuers.isEmpty() || crlIssuers.contains(GeneralNameText.directoryName(crlIssuer));
    }

    /**
     * Whether a CRL with this issuingDistributionPoint (null: none) is the one published at this point: either does
     * not name its point, or they share a full name (OpenSSL's idp_check_dp).
     */
    public boolean matches(IssuingDistributionPoint idp) {
        if (idp == null || !idp.named() || !named) {
            return true;
        }
        return fullNames.stream().anyMatch(idp.fullNames()::contains);
    }

    /**
     * ReasonFlags: a BIT STRING (first byte: unused bits) whose bits 1 to 8 are the reasons a CRL may cover
     * (keyCompromise to aACompromise; bit 0 is unused). Every one of them set means all reasons.
     */
    private static boolean allReasons(byte[] bitString) {
        if (bitString.length < 3) {
            return false;
        }
        return (bitString[1] & 0x7f) == 0x7f && (bitString[2] & 0x80) != 0;
    }
}
