package dev.mtlsproxy.config;

import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

/**
 * What the JDK's {@link X509Certificate#getSubjectAlternativeNames()} does not say of a certificate's names: the
 * octets of its IP addresses. The JDK writes a 16-octet IPv4-mapped address (::ffff:10.1.2.3) as "10.1.2.3", the
 * text of a 4-octet one, while its name-constraint checks, like Go's, judge it as the IPv6 address it is.
 */
public final class SubjectAltNames {

    private static final String OID = "2.5.29.17";
    /** GeneralName's iPAddress: [7] IMPLICIT OCTET STRING. */
    private static final int IP_ADDRESS = 7;

    private SubjectAltNames() {
    }

    /**
     * The octets of each iPAddress name, in the certificate's order; empty when there are none.
     *
     * @throws IllegalArgumentException when the extension is not DER this reader can walk
     */
    public static List<byte[]> ipAddresses(X509Certificate certificate) {
        Der.Element names = Der.extension(certificate.getExtensionValue(OID));
        List<byte[]> addresses = new ArrayList<>();
        if (names == null) {
            return addresses;
        }
        for (Der.Element name : names.children()) {
            if (name.contextNumber() == IP_ADDRESS) {
                addresses.add(name.content());
            }
        }
        return addresses;
    }
}
