package dev.mtlsproxy.core.identity;

import dev.mtlsproxy.config.SpiffeIds;
import dev.mtlsproxy.config.SubjectAltNames;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.CertificateEncodingException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.security.auth.x500.X500Principal;

/** Turns a verified leaf certificate into a {@link PeerIdentity}. */
public final class PeerIdentities {

    private static final String SUBJECT_ALT_NAME = "2.5.29.17";
    private static final int SAN_EMAIL = 1;
    private static final int SAN_DNS = 2;
    private static final int SAN_URI = 6;
    private static final int SAN_IP = 7;
    /** Indexes into {@link X509Certificate#getKeyUsage()} (RFC 5280, 4.2.1.3). */
    private static final int KEY_CERT_SIGN = 5;
    private static final int CRL_SIGN = 6;

    private PeerIdentities() {
    }

    public static PeerIdentity fromCertificate(X509Certificate leaf) throws CertificateParsingException {
        List<String> uris = new ArrayList<>();
        List<String> dns = new ArrayList<>();
        List<String> emails = new ArrayList<>();
        List<String> ips = new ArrayList<>();
        String malformed;
        try {
            malformed = SubjectAltNames.malformedName(leaf);
        } catch (IllegalArgumentException e) {
            throw new CertificateParsingException("the subject alternative names cannot be read", e);
        }
        if (malformed != null) {
            // Refused rather than dropped, as Go refuses it: a certificate with a name no CA should issue is a
            // misissued one, and serving its other names would let the CA's mistake pass for an identity.
            throw new CertificateParsingException("the subject alternative names cannot be read: a " + malformed
                    + " is malformed");
        }
        Collection<List<?>> sans = leaf.getSubjectAlternativeNames();
        if ((sans == null || sans.isEmpty()) && leaf.getExtensionValue(SUBJECT_ALT_NAME) != null) {
            // The JDK drops a non-critical SAN extension it cannot parse (a URI with a space, a host java.net.URI
            // refuses) as though there were none, and its name-constraint checks then see none either. OpenSSL-based
            // proxies would read names from it that this one cannot; Go refuses such a certificate, and so do we.
            throw new CertificateParsingException("the subject alternative names cannot be read");
        }
        if (sans != null) {
            for (List<?> san : sans) {
                int type = (Integer) san.get(0);
                Object value = san.get(1);
                if (!(value instanceof String text)) {
                    continue;
                }
                switch (type) {
                    case SAN_URI -> uris.add(text);
                    case SAN_DNS -> dns.add(text.toLowerCase(Locale.ROOT));
                    case SAN_EMAIL -> emails.add(text);
                    case SAN_IP -> ips.add(text); // replaced below by the text of its octets
                    default -> {
                        // other name types carry no identity we match on
                    }
                }
            }
        }
        if (!ips.isEmpty()) {
            ips = ipAddresses(leaf);
        }
        String subject = leaf.getSubjectX500Principal().getName(X500Principal.RFC2253);
        boolean signing = isSigningCertificate(leaf);
        return new PeerIdentity(
                signing ? null : spiffeId(uris),
                uris,
                dns,
                emails,
                ips,
                subject,
                commonName(subject),
                attribute(subject, "O"),
                attribute(subject, "OU"),
                leaf.getIssuerX500Principal().getName(X500Principal.RFC2253),
                leaf.getSerialNumber().toString(16),
                sha256(leaf),
                Base64.getEncoder().encodeToString(digest(leaf.getPublicKey().getEncoded())),
                leaf.getNotBefore().toInstant(),
                leaf.getNotAfter().toInstant(),
                keyType(leaf.getPublicKey().getAlgorithm()),
                clientAuthEku(leaf),
                signing,
                null);
    }

    /** A peer described without a certificate ({@code tests:} in the config): no fingerprints, no dates. */
    public static PeerIdentity described(List<String> uris, List<String> dns, List<String> emails, List<String> ips,
            String subject, String issuer, String trustAnchor) {
        return new PeerIdentity(spiffeId(uris), uris, dns.stream().map(d -> d.toLowerCase(Locale.ROOT)).toList(),
                emails, ips, subject, commonName(subject), attribute(subject, "O"),
                attribute(subject, "OU"), issuer, "", "", "", null, null, null, true, false, trustAnchor);
    }

    /**
     * The IP SANs as text that keeps their length: the JDK writes a 16-octet IPv4-mapped address as the IPv4 one, so
     * a CA excluded from 10.0.0.0/8, whose constraint the JDK does not apply to ::ffff:10.1.2.3, would have issued a
     * name an {@code ipSan: 10.0.0.0/8} grant matches.
     */
    private static List<String> ipAddresses(X509Certificate leaf) throws CertificateParsingException {
        List<String> text = new ArrayList<>();
        try {
            for (byte[] octets : SubjectAltNames.ipAddresses(leaf)) {
                text.add(octets.length == 16 ? Inet6Address.getByAddress(null, octets, -1).getHostAddress()
                        : InetAddress.getByAddress(octets).getHostAddress());
            }
        } catch (IllegalArgumentException | UnknownHostException e) {
            throw new CertificateParsingException("the subject alternative names cannot be read", e);
        }
        return text;
    }

    private static String keyType(String jdkAlgorithm) {
        return switch (jdkAlgorithm) {
            case "EC" -> "EC";
            case "RSA", "RSASSA-PSS" -> "RSA";
            case "Ed25519", "EdDSA" -> "Ed25519";
            default -> jdkAlgorithm;
        };
    }

    private static boolean clientAuthEku(X509Certificate leaf) throws CertificateParsingException {
        List<String> usages = leaf.getExtendedKeyUsage();
        return usages != null && (usages.contains("1.3.6.1.5.5.7.3.2") || usages.contains("2.5.29.37.0"));
    }

    /**
     * Whether the certificate is what the SPIFFE spec (X509-SVID, 4.1 and 4.3) calls a signing certificate: a CA, or
     * one holding keyCertSign or cRLSign. A leaf SVID may be neither, and go-spiffe refuses any other as an SVID. A
     * signing certificate's SPIFFE URI names a signing authority of a trust domain, not a workload, so presented as
     * a peer certificate it is no SPIFFE identity; its other names still count (a self-signed client certificate
     * made with openssl's defaults is a CA).
     */
    private static boolean isSigningCertificate(X509Certificate leaf) {
        boolean[] usage = leaf.getKeyUsage();
        return leaf.getBasicConstraints() >= 0 || (usage != null && (usage[KEY_CERT_SIGN] || usage[CRL_SIGN]));
    }

    /**
     * An X509-SVID carries exactly one URI SAN, of any scheme (X509-SVID 2): with a second one, spiffe or not, the
     * certificate is no SVID, and go-spiffe's x509svid refuses it; the proxy must not be the one verifier where it
     * passes as the workload its spiffe URI names. One that breaks the SPIFFE ID syntax is no identity either:
     * "spiffe://td/ns/shop/../ops" would pass a prefix grant for spiffe://td/ns/shop, and mean /ns/ops to a backend
     * that normalises the XFCC URI it receives.
     */
    private static String spiffeId(List<String> uris) {
        return uris.size() == 1 && SpiffeIds.isValid(uris.get(0)) ? uris.get(0) : null;
    }

    /**
     * The common name of a subject that has exactly one. With two, tools disagree on which is the name (OpenSSL reads
     * the first in the certificate, Go the last), so a {@code subjectCn} grant must not pick one: none matches. A CN
     * the JDK does not decode as text (a UniversalString, an OCTET STRING: "#hex" in the RFC 2253 text) counts too:
     * OpenSSL reads a UniversalString as the name, and the one text CN beside it must not become the only one.
     */
    private static String commonName(String rfc2253) {
        List<Object> cn = values(rfc2253, "CN");
        return cn.size() == 1 && cn.get(0) instanceof String name ? name : null;
    }

    /** Every text value of one attribute type in a subject, in the order of its RFC 2253 text. */
    private static List<String> attribute(String rfc2253, String type) {
        List<String> text = new ArrayList<>();
        for (Object value : values(rfc2253, type)) {
            if (value instanceof String s) {
                text.add(s);
            }
        }
        return text;
    }

    /**
     * Every value of one attribute type in a subject, in the order of its RFC 2253 text: a String, or the bytes of a
     * value the JDK wrote in "#hex" form.
     */
    private static List<Object> values(String rfc2253, String type) {
        List<Object> values = new ArrayList<>();
        try {
            for (Rdn rdn : new LdapName(rfc2253).getRdns()) {
                // A multi-valued RDN (CN=a+CN=b, OU=x+CN=y) holds several; Rdn.getType() names only the first.
                NamingEnumeration<? extends Attribute> attributes = rdn.toAttributes().getAll();
                while (attributes.hasMore()) {
                    Attribute attribute = attributes.next();
                    if (attribute.getID().equalsIgnoreCase(type)) {
                        NamingEnumeration<?> each = attribute.getAll();
                        while (each.hasMore()) {
                            values.add(each.next());
                        }
                    }
                }
            }
        } catch (NamingException e) {
            // The JDK produced this DN itself; an unparsable one simply yields no attribute.
            return List.of();
        }
        // LdapName lists RDNs right to left; keep the certificate's order.
        java.util.Collections.reverse(values);
        return values;
    }

    static String sha256(X509Certificate certificate) {
        try {
            return HexFormat.of().formatHex(digest(certificate.getEncoded()));
        } catch (CertificateEncodingException e) {
            throw new IllegalStateException("cannot fingerprint certificate", e);
        }
    }

    private static byte[] digest(byte[] bytes) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(bytes);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
        }
    }
}
