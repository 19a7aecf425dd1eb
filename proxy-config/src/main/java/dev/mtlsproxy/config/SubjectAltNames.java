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
    /** GeneralName's rfc822Name, dNSName and uniformResourceIdentifier: [1], [2], [6] IMPLICIT IA5String. */
    private static final int RFC822_NAME = 1;
    private static final int DNS_NAME = 2;
    private static final int URI = 6;

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

    /**
     * The type of the first rfc822Name, dNSName or uniformResourceIdentifier whose octets no CA should issue, as RFC
     * 5280 spells the type ("dNSName"); null when every one is well formed. Judged on the octets, not on the JDK's
     * text of them, which reads a NUL as a character like any other and a non-ASCII octet as U+FFFD.
     *
     * <p>All three must be printable ASCII without space (0x21 to 0x7e): Go's crypto/x509 refuses a non-ASCII octet
     * in them at parse, java.net.URI refuses a space or control in a URI, and a NUL would make
     * "admin.prod.test\0.evil.test" one name to a C string and another to us. A dNSName must also be a host name or
     * a wildcard pattern: letters, digits, '-', '_', '.' and '*' (Go's hostname syntax), so no quote, comma or
     * semicolon reaches a policy match or an XFCC value.
     *
     * @throws IllegalArgumentException when the extension is not DER this reader can walk
     */
    public static String malformedName(X509Certificate certificate) {
        Der.Element names = Der.extension(certificate.getExtensionValue(OID));
        if (names == null) {
            return null;
        }
        for (Der.Element name : names.children()) {
            switch (name.contextNumber()) {
                case RFC822_NAME -> {
                    if (!printable(name.content())) {
                        return "rfc822Name";
                    }
                }
                case DNS_NAME -> {
                    if (!hostName(name.content())) {
                        return "dNSName";
                    }
                }
                case URI -> {
                    if (!printable(name.content())) {
                        return "uniformResourceIdentifier";
                    }
                }
                default -> {
                    // other types are judged elsewhere (IP addresses) or carry no name we read
                }
            }
        }
        return null;
    }

    private static boolean printable(byte[] octets) {
        for (byte b : octets) {
            if (b < 0x21 || b > 0x7e) {
                return false;
            }
        }
        return true;
    }

    private static boolean hostName(byte[] octets) {
        for (byte b : octets) {
            boolean allowed = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '-'
                    || b == '_' || b == '.' || b == '*';
            if (!allowed) {
                return false;
            }
        }
        return true;
    }
}
