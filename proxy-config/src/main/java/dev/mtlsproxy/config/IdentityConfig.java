package dev.mtlsproxy.config;

/**
 * A named workload identity. Every field that is set must match the verified client certificate (they combine with
 * AND); at least one must be set, so an identity can never match "anyone".
 *
 * @param spiffeId  exact SPIFFE ID, from the certificate's {@code spiffe://} URI SAN
 * @param dnsSan    exact DNS SAN, compared case-insensitively
 * @param subjectCn exact subject common name
 */
public record IdentityConfig(String spiffeId, String dnsSan, String subjectCn) {
}
