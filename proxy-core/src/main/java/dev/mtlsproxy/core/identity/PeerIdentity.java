package dev.mtlsproxy.core.identity;

import io.netty.util.AttributeKey;
import java.time.Instant;
import java.util.List;

/**
 * Who is on the other end of a connection, taken once from its verified leaf certificate.
 *
 * @param spiffeId     the SPIFFE ID, or null when the certificate is no X509-SVID: it has not exactly one URI SAN,
 *                     that URI is no well-formed SPIFFE ID, or it is a {@code signingCertificate}
 * @param uriSans      all URI SANs as presented, SPIFFE ID included
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
 * @param spkiSha256   SHA-256 of the SubjectPublicKeyInfo, base64 (an SPKI pin)
 * @param notBefore    start of validity
 * @param notAfter     end of validity
 * @param keyType      leaf key algorithm: EC, RSA, Ed25519, or the JDK's name for anything else
 * @param clientAuthEku whether the leaf names clientAuth (or anyExtendedKeyUsage) in an extended key usage
 * @param signingCertificate whether the certificate is a CA or may sign certificates or CRLs (keyCertSign, cRLSign):
 *                     what the X509-SVID spec calls a signing certificate, never a leaf SVID, so none of its
 *                     {@code spiffe://} URIs names the peer
 * @param trustAnchor  name of the trust anchor the chain was verified to; null when not verified (a description)
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
        String spkiSha256,
        Instant notBefore,
        Instant notAfter,
        String keyType,
        boolean clientAuthEku,
        boolean signingCertificate,
        String trustAnchor) {

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

    /** The same certificate, attributed to the trust anchor its chain verified to. */
    public PeerIdentity withTrustAnchor(String anchor) {
        return new PeerIdentity(spiffeId, uriSans, dnsSans, emailSans, ipSans, subject, subjectCn, subjectO,
                subjectOu, issuer, serialHex, sha256, spkiSha256, notBefore, notAfter, keyType, clientAuthEku,
                signingCertificate, anchor);
    }

    /** A short, safe label for logs: the SPIFFE ID, else the subject. */
    public String displayName() {
        return spiffeId != null ? spiffeId : subject;
    }
}
