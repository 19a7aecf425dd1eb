package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.core.identity.PeerIdentity;
import java.security.cert.X509Certificate;
import java.util.List;

/**
 * A client chain that passed path validation in one TLS context, with what was derived from it once: the parsed
 * certificates, the path PKIX validated and its anchor, and the peer's identity. Shared by every connection that
 * presents the same bytes to that context.
 *
 * <p>Holds nothing that changes while the bytes and the context stay the same. The dates are kept so a hit can be
 * refused once any certificate of the path is outside its validity; revocation is checked on every use.
 *
 * @param chain      as the client sent it, leaf first, parsed; callers must not modify it
 * @param path       the chain below the trust anchor, as validated
 * @param anchor     the trust anchor's certificate the path validated against
 * @param anchorName the configured trust anchor that certificate belongs to
 * @param identity   the peer, attributed to that anchor; never null (a leaf whose names cannot be read is refused)
 * @param validFrom  the latest notBefore in the path, epoch milliseconds
 * @param validUntil the earliest notAfter in the path, epoch milliseconds
 */
public record VerifiedChain(X509Certificate[] chain, List<X509Certificate> path, X509Certificate anchor,
        String anchorName, PeerIdentity identity, long validFrom, long validUntil) {

    public VerifiedChain {
        path = List.copyOf(path);
    }

    /** Mirrors {@link X509Certificate#checkValidity(java.util.Date)}: both ends are inclusive. */
    boolean validAt(long epochMillis) {
        return epochMillis >= validFrom && epochMillis <= validUntil;
    }

    static VerifiedChain of(X509Certificate[] chain, List<X509Certificate> path, X509Certificate anchor,
            String anchorName, PeerIdentity identity) {
        long from = Long.MIN_VALUE;
        long until = Long.MAX_VALUE;
        for (X509Certificate c : path) {
            from = Math.max(from, c.getNotBefore().getTime());
            until = Math.min(until, c.getNotAfter().getTime());
        }
        // The CA's own dates bound the chain's too (ClientCertificateVerifier checks them).
        from = Math.max(from, anchor.getNotBefore().getTime());
        until = Math.min(until, anchor.getNotAfter().getTime());
        return new VerifiedChain(chain, path, anchor, anchorName, identity, from, until);
    }
}
