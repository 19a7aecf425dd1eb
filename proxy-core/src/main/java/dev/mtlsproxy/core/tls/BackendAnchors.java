package dev.mtlsproxy.core.tls;

import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;

/**
 * Which of a backend's {@code serverCAs} a chain that the JDK's PKIX trust manager accepted ended at, and the path
 * below it, so that {@link AnchorRules} can judge that CA: the trust manager says yes or no, never which anchor.
 *
 * <p>The chain is read as the JDK's validator reads a chain in issuing order: down to the first certificate that is
 * one of the trusted CAs itself (same name and key, as a copy or a cross-signed CA is), and the anchor is then a
 * trusted CA whose key signed the last certificate above it. The signature is checked here rather than trusted to
 * the name: a chain could otherwise name a lenient CA as the issuer of a certificate it did not sign. Thread-safe.
 */
final class BackendAnchors {

    /**
     * @param path    leaf first, without the anchor; empty when the leaf itself is a trusted CA (a pinned certificate)
     * @param anchors the trusted CAs the path may have ended at (usually one; a renewed CA and its old self are two);
     *                empty when the chain is not in issuing order, so that no anchor can be told
     */
    record Found(List<X509Certificate> path, List<X509Certificate> anchors) {
    }

    private final List<X509Certificate> trusted;

    BackendAnchors(Collection<X509Certificate> trusted) {
        this.trusted = List.copyOf(trusted);
    }

    Found find(X509Certificate[] chain) {
        List<X509Certificate> path = new ArrayList<>(chain.length);
        for (X509Certificate c : chain) {
            boolean inOrder = path.isEmpty()
                    || c.getSubjectX500Principal().equals(path.get(path.size() - 1).getIssuerX500Principal());
            if (!inOrder || isTrusted(c)) {
                // What follows is not part of this path: the anchor's own copy, or certificates the backend added.
                break;
            }
            path.add(c);
        }
        if (path.isEmpty()) {
            return new Found(path, trusted.stream().filter(ca -> sameCa(ca, chain[0])).toList());
        }
        X509Certificate top = path.get(path.size() - 1);
        return new Found(path, trusted.stream().filter(ca -> signed(ca, top)).toList());
    }

    /** The chain from the leaf up to the first certificate that did not issue the one before it, which it leaves out. */
    static X509Certificate[] inIssuingOrder(X509Certificate[] chain) {
        int n = Math.min(1, chain.length);
        while (n < chain.length
                && chain[n].getSubjectX500Principal().equals(chain[n - 1].getIssuerX500Principal())) {
            n++;
        }
        return n == chain.length ? chain : Arrays.copyOf(chain, n);
    }

    private boolean isTrusted(X509Certificate c) {
        return trusted.stream().anyMatch(ca -> sameCa(ca, c));
    }

    /** Compared by encoding: the chain's certificates may come from another provider than the configured ones. */
    private static boolean sameCa(X509Certificate ca, X509Certificate c) {
        return ca.getSubjectX500Principal().equals(c.getSubjectX500Principal())
                && Arrays.equals(ca.getPublicKey().getEncoded(), c.getPublicKey().getEncoded());
    }

    private static boolean signed(X509Certificate ca, X509Certificate c) {
        if (!ca.getSubjectX500Principal().equals(c.getIssuerX500Principal())) {
            return false;
        }
        try {
            c.verify(ca.getPublicKey());
            return true;
        } catch (GeneralSecurityException e) {
            return false;
        }
    }
}
