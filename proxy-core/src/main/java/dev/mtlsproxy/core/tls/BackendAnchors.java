package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.Issuers;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;

/**
 * The path a backend's chain stands for, built as a client's is ({@link TrustAnchors#pathBelow}: from the
 * certificates sent in any order, duplicates and strangers left out), and which of the {@code serverCAs} it ended at,
 * so that {@link AnchorRules} can judge that CA: the JDK's trust manager says yes or no, never which anchor.
 *
 * <p>The anchor is a trusted CA whose key signed the top of the path. The signature is checked here rather than
 * trusted to the name: a chain could otherwise name a lenient CA as the issuer of a certificate it did not sign.
 * Thread-safe.
 */
final class BackendAnchors {

    private final List<X509Certificate> trusted;

    BackendAnchors(Collection<X509Certificate> trusted) {
        this.trusted = List.copyOf(trusted);
    }

    List<X509Certificate> trusted() {
        return trusted;
    }

    /**
     * The certification path below the trusted CAs, leaf first; empty when the leaf itself is a trusted CA (a pinned
     * certificate), whatever else was sent.
     */
    List<X509Certificate> pathBelow(X509Certificate[] chain) {
        if (trusted.stream().anyMatch(ca -> sameCa(ca, chain[0]))) {
            return List.of();
        }
        return TrustAnchors.pathBelow(chain, trusted);
    }

    /**
     * The trusted CAs {@code path} may have ended at (usually one; a renewed CA and its old self are two): those whose
     * key signed its top, or for a pinned leaf, its own copies.
     */
    List<X509Certificate> anchorsOf(List<X509Certificate> path, X509Certificate leaf) {
        if (path.isEmpty()) {
            return trusted.stream().filter(ca -> sameCa(ca, leaf)).toList();
        }
        X509Certificate top = path.get(path.size() - 1);
        return trusted.stream().filter(ca -> Issuers.issued(ca, top)).toList();
    }

    /** Compared by encoding: the chain's certificates may come from another provider than the configured ones. */
    private static boolean sameCa(X509Certificate ca, X509Certificate c) {
        return ca.getSubjectX500Principal().equals(c.getSubjectX500Principal())
                && Arrays.equals(ca.getPublicKey().getEncoded(), c.getPublicKey().getEncoded());
    }
}
