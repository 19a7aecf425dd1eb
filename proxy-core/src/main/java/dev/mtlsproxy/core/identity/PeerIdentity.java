package dev.mtlsproxy.core.identity;

import io.netty.util.AttributeKey;
import java.time.Instant;
import java.util.List;

/**
 * Who is on the other end of a connection, taken once from its verified leaf certificate.
 *
 * @param spiffeId     the SPIFFE ID, or null when the certificate has no single {@code spiffe://} URI SAN
 * @param uriSans      all URI SANs, SPIFFE ID included
 * @param dnsSans      DNS SANs, lower-cased
 * @param emailSans    RFC 822 SANs
 * @param ipSans       IP SANs, in the JDK's textual form
 * @param subject      subject DN in RFC 2253 form
 * @param subjectCn    subject common name, or null
 * @param subjectO     subject organisations
 * @param subjectOu    subject organisational units
 * @param issuer       issuer DN in RFC 2253 form
 * @param serialHex    serial number, lower-case hex
 * @param sha256       SHA-256 fingerprint of the DER certificate, lower-case hex
 * @param notAfter     end of validity
 */
public record PeerIdentity(
        String spiffeId,
        List<String> uriSans,
        List<String> dnsSans,
        List<String> emailSans,
        List<String> ipSans,
        String subject,
        String subjectCn,
        List<String> subjectO,
        List<String> subjectOu,
        String issuer,
        String serialHex,
        String sha256,
        Instant notAfter) {

    /** Where the connection's identity lives; set once by {@link IdentityHandler}, never changed. */
    public static final AttributeKey<PeerIdentity> KEY = AttributeKey.valueOf(PeerIdentity.class, "peer");

    public PeerIdentity {
        uriSans = List.copyOf(uriSans);
        dnsSans = List.copyOf(dnsSans);
        emailSans = List.copyOf(emailSans);
        ipSans = List.copyOf(ipSans);
        subjectO = List.copyOf(subjectO);
        subjectOu = List.copyOf(subjectOu);
    }

    /** A short, safe label for logs: the SPIFFE ID, else the subject. */
    public String displayName() {
        return spiffeId != null ? spiffeId : subject;
    }
}
