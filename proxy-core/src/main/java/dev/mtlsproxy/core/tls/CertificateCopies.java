package dev.mtlsproxy.core.tls;

import java.io.ByteArrayInputStream;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;

/**
 * Certificates decoded afresh from their encoding, for the JDK's PKIX to check in place of the originals. Its
 * name-constraint check adds the CN of a certificate that has SANs but no DNS name to the parsed subjectAltName
 * extension of the very object it checks, whenever a CA of the path constrains DNS names; the original would go on
 * to show a DNS name the certificate does not hold, to host name matching, identities, XFCC and the log.
 *
 * <p>The plural {@link CertificateFactory#generateCertificates} decodes a new object each time. The singular
 * {@code generateCertificate}, which Netty uses for the certificates a peer sends, hands out the JDK's cached
 * instance of an encoding, and the JDK's PKIX looks any certificate of another class up in that same cache: the
 * originals, and every other holder of the same certificate, are all that one object.
 */
final class CertificateCopies {

    private CertificateCopies() {
    }

    private static final String NAME_CONSTRAINTS_OID = "2.5.29.30";

    /**
     * What to hand the JDK's PKIX for {@code chain}: the chain itself when none of its certificates constrains
     * names, for then PKIX changes nothing, else copies. Copying always would cost every handshake not remembered,
     * refusals included, a decoding per certificate. Only the chain's own constraints count: a trust anchor made
     * from a certificate brings none of its own into PKIX (AnchorRules puts a constrained one in the chain).
     */
    static X509Certificate[] forPkix(X509Certificate... chain) throws CertificateException {
        for (X509Certificate c : chain) {
            if (c.getExtensionValue(NAME_CONSTRAINTS_OID) != null) {
                return of(chain);
            }
        }
        return chain;
    }

    /** New objects for {@code certificates}, in the same order; nothing else holds them. */
    static X509Certificate[] of(X509Certificate... certificates) throws CertificateException {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        X509Certificate[] copies = new X509Certificate[certificates.length];
        for (int i = 0; i < certificates.length; i++) {
            copies[i] = (X509Certificate) factory.generateCertificates(
                    new ByteArrayInputStream(certificates[i].getEncoded())).iterator().next();
        }
        return copies;
    }
}
