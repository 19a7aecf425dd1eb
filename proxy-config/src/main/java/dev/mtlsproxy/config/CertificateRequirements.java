package dev.mtlsproxy.config;

import java.time.Duration;
import java.util.List;

/**
 * Conditions a client certificate must meet on top of chaining to its trust anchor, per identity or per route. A
 * certificate that fails one does not match: it is denied with the failed condition as the reason.
 *
 * @param clientAuthEku        the leaf must carry the clientAuth extended key usage (absent EKU is not enough)
 * @param keyTypes             accepted key algorithms of the leaf: {@code EC}, {@code RSA}, {@code Ed25519}
 * @param maxLifetime          longest notBefore-to-notAfter span accepted; forces short-lived certificates
 * @param minRemainingLifetime the certificate must stay valid at least this long after the request
 */
public record CertificateRequirements(
        Boolean clientAuthEku, List<String> keyTypes, Duration maxLifetime, Duration minRemainingLifetime) {

    public static final List<String> KEY_TYPES = List.of("EC", "RSA", "Ed25519");

    public CertificateRequirements {
        clientAuthEku = clientAuthEku != null && clientAuthEku;
        keyTypes = keyTypes == null ? List.of() : List.copyOf(keyTypes);
    }
}
