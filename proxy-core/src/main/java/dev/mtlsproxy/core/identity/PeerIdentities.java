package dev.mtlsproxy.core.identity;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.CertificateEncodingException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.security.auth.x500.X500Principal;

/** Turns a verified leaf certificate into a {@link PeerIdentity}. */
public final class PeerIdentities {

    private static final int SAN_EMAIL = 1;
    private static final int SAN_DNS = 2;
    private static final int SAN_URI = 6;
    private static final int SAN_IP = 7;

    private PeerIdentities() {
    }

    public static PeerIdentity fromCertificate(X509Certificate leaf) throws CertificateParsingException {
        List<String> uris = new ArrayList<>();
        List<String> dns = new ArrayList<>();
        List<String> emails = new ArrayList<>();
        List<String> ips = new ArrayList<>();
        Collection<List<?>> sans = leaf.getSubjectAlternativeNames();
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
                    case SAN_IP -> ips.add(text);
                    default -> {
                        // other name types carry no identity we match on
                    }
                }
            }
        }
        String subject = leaf.getSubjectX500Principal().getName(X500Principal.RFC2253);
        List<String> cn = attribute(subject, "CN");
        return new PeerIdentity(
                spiffeId(uris),
                uris,
                dns,
                emails,
                ips,
                subject,
                cn.isEmpty() ? null : cn.get(0),
                attribute(subject, "O"),
                attribute(subject, "OU"),
                leaf.getIssuerX500Principal().getName(X500Principal.RFC2253),
                leaf.getSerialNumber().toString(16),
                sha256(leaf),
                leaf.getNotAfter().toInstant());
    }

    /** An X.509-SVID carries exactly one SPIFFE URI; with two, neither is trusted as the identity. */
    private static String spiffeId(List<String> uris) {
        String found = null;
        for (String uri : uris) {
            if (uri.regionMatches(true, 0, "spiffe://", 0, "spiffe://".length())) {
                if (found != null) {
                    return null;
                }
                found = uri;
            }
        }
        return found;
    }

    private static List<String> attribute(String rfc2253, String type) {
        List<String> values = new ArrayList<>();
        try {
            for (Rdn rdn : new LdapName(rfc2253).getRdns()) {
                if (rdn.getType().equalsIgnoreCase(type)) {
                    values.add(rdn.getValue().toString());
                }
            }
        } catch (InvalidNameException e) {
            // The JDK produced this DN itself; an unparsable one simply yields no attribute.
            return List.of();
        }
        // LdapName lists RDNs right to left; keep the certificate's order.
        java.util.Collections.reverse(values);
        return values;
    }

    static String sha256(X509Certificate certificate) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(certificate.getEncoded()));
        } catch (NoSuchAlgorithmException | CertificateEncodingException e) {
            throw new IllegalStateException("cannot fingerprint certificate", e);
        }
    }
}
