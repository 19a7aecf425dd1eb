package dev.mtlsproxy.core.tls;

import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import javax.security.auth.x500.X500Principal;

/**
 * The CAs a listener trusts, by the name of the trust anchor each belongs to, and which anchor a verified chain ended
 * at. Identities are scoped to anchors, so this attribution is what keeps one CA from minting another's names.
 *
 * <p>Attribution reads the chain exactly as {@link ClientCertificateVerifier} validated it: the path below the
 * anchors (a client may append the root itself), whose last certificate was issued by the anchor. Validation makes
 * CA subjects unique across anchors, so that issuer name identifies one anchor; PKIX already checked its signature.
 */
public final class TrustAnchors {

    private final Map<X500Principal, String> anchorBySubject;
    private final Set<X509Certificate> certificates;

    TrustAnchors(Map<X509Certificate, String> anchorOf) {
        Map<X500Principal, String> bySubject = new HashMap<>();
        anchorOf.forEach((ca, name) -> bySubject.put(ca.getSubjectX500Principal(), name));
        this.anchorBySubject = Map.copyOf(bySubject);
        this.certificates = Set.copyOf(anchorOf.keySet());
    }

    Set<X509Certificate> certificates() {
        return certificates;
    }

    /**
     * The anchor a chain that passed verification ended at, or null if it cannot be attributed (then no identity
     * scoped to any anchor matches: fail closed).
     */
    public String anchorOf(X509Certificate[] chain) {
        List<X509Certificate> path = pathBelow(chain, certificates);
        return path.isEmpty() ? null : anchorBySubject.get(path.get(path.size() - 1).getIssuerX500Principal());
    }

    /** The chain without the trust anchors a client may have appended; the leaf always stays. */
    static List<X509Certificate> pathBelow(X509Certificate[] chain, Collection<X509Certificate> anchors) {
        List<X509Certificate> path = new ArrayList<>(chain.length);
        for (X509Certificate c : chain) {
            if (!anchors.contains(c) || path.isEmpty()) {
                path.add(c);
            }
        }
        return path;
    }
}
