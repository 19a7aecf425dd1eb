package dev.mtlsproxy.config;

import java.util.List;

/**
 * The emergency deny-list: client certificates refused whatever CA issued them and whatever CRLs say, matched
 * against every certificate of a client's chain. It needs nothing from a CA, so it works when the CA cannot publish
 * a CRL in time. CRLs themselves belong to their trust anchor ({@link TrustAnchorConfig#crls()}).
 *
 * @param denySerials      certificate serial numbers in hex, refused whatever their issuer
 * @param denyFingerprints SHA-256 fingerprints of certificates (64 hex digits, colons allowed)
 * @param denySpkiPins     base64 SHA-256 of a certificate's SubjectPublicKeyInfo (as Envoy's verify_certificate_spki)
 */
public record RevocationConfig(List<String> denySerials, List<String> denyFingerprints, List<String> denySpkiPins) {

    public static final RevocationConfig NONE = new RevocationConfig(null, null, null);

    public RevocationConfig {
        denySerials = denySerials == null ? List.of() : List.copyOf(denySerials);
        denyFingerprints = denyFingerprints == null ? List.of() : List.copyOf(denyFingerprints);
        denySpkiPins = denySpkiPins == null ? List.of() : List.copyOf(denySpkiPins);
    }
}
