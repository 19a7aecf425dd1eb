package dev.mtlsproxy.config;

import java.security.cert.X509CRL;
import java.util.Set;

/**
 * A CRL's issuingDistributionPoint extension (RFC 5280 5.2.5): which certificates the CRL speaks for. A CRL without
 * one covers every certificate of its issuer; with one, only those in its scope.
 *
 * @param fullNames          the distribution point's fullName, as {@link GeneralNameText}; empty when it has none
 * @param relativeName       the distribution point is named relative to the CRL issuer (nameRelativeToCRLIssuer)
 * @param onlyUserCerts      onlyContainsUserCerts: covers no CA certificate
 * @param onlyCaCerts        onlyContainsCACerts: covers no end-entity certificate
 * @param onlyAttributeCerts onlyContainsAttributeCerts: covers no public-key certificate at all
 * @param someReasons        onlySomeReasons is present: the CRL lists revocations for some reasons only
 * @param indirect           indirectCRL: entries may be for certificates of other issuers
 */
public record IssuingDistributionPoint(Set<String> fullNames, boolean relativeName, boolean onlyUserCerts,
        boolean onlyCaCerts, boolean onlyAttributeCerts, boolean someReasons, boolean indirect) {

    static final String OID = "2.5.29.28";

    public IssuingDistributionPoint {
        fullNames = Set.copyOf(fullNames);
    }

    /**
     * The extension of {@code crl}, critical or not, or null when it has none.
     *
     * @throws IllegalArgumentException when the extension is not valid DER of its type
     */
    public static IssuingDistributionPoint of(X509CRL crl) {
        Der.Element idp = Der.extension(crl.getExtensionValue(OID));
        if (idp == null) {
            return null;
        }
        if (idp.tag() != Der.SEQUENCE) {
            throw new IllegalArgumentException("not a SEQUENCE");
        }
        Set<String> fullNames = Set.of();
        boolean relative = false;
        boolean[] flags = new boolean[6];
        boolean someReasons = false;
        for (Der.Element field : idp.children()) {
            switch (field.contextNumber()) {
                case 0 -> {
                    // DistributionPointName is a CHOICE, so [0] is explicit around it
                    Der.Element name = Der.one(field.content());
                    if (name.contextNumber() == 0) {
                        fullNames = GeneralNameText.all(name);
                    } else if (name.contextNumber() == 1) {
                        relative = true;
                    } else {
                        throw new IllegalArgumentException("unknown distribution point name");
                    }
                }
                case 1, 2, 4, 5 -> flags[field.contextNumber()] = field.bool();
                case 3 -> someReasons = true;
                default -> throw new IllegalArgumentException("unknown field [" + field.contextNumber() + "]");
            }
        }
        return new IssuingDistributionPoint(fullNames, relative, flags[1], flags[2], flags[5], someReasons, flags[4]);
    }

    /** Whether the CRL names its distribution point, which the certificate's must then match. */
    public boolean named() {
        return !fullNames.isEmpty() || relativeName;
    }
}
