package dev.mtlsproxy.core.tls;

import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
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

    /**
     * The certification path a client's chain stands for, leaf first, ending below the trust anchors: each
     * certificate followed by its issuer among those sent, in whatever order they came. Duplicates, certificates the
     * path does not use and any anchor the client appended are left out. RFC 8446 (4.4.2) asks servers to be
     * prepared for extraneous certificates and arbitrary orderings, and OpenSSL, BoringSSL and Go build the path
     * from the certificates sent the same way; the JDK's path validator alone would refuse such a chain.
     *
     * <p>The walk stops at a certificate whose issuer is named by a trust anchor (PKIX then checks that anchor's
     * signature) or when no certificate sent is its issuer (PKIX then finds no anchor). The leaf always stays.
     */
    static List<X509Certificate> pathBelow(X509Certificate[] chain, Collection<X509Certificate> anchors) {
        Set<X500Principal> anchorNames = new HashSet<>();
        for (X509Certificate anchor : anchors) {
            anchorNames.add(anchor.getSubjectX500Principal());
        }
        List<X509Certificate> path = new ArrayList<>(chain.length);
        X509Certificate current = chain[0];
        path.add(current);
        int[] signatureChecks = {MAX_SIGNATURE_CHECKS};
        while (!anchorNames.contains(current.getIssuerX500Principal())) {
            current = issuerAmong(chain, current, path, anchors, signatureChecks);
            if (current == null) {
                break;
            }
            path.add(current);
        }
        return path;
    }

    /**
     * Signature checks one path may spend on choosing between certificates of the same name. A renewed CA sent
     * with its predecessor needs one or two; a hostile client sending ten certificates of one name would otherwise
     * buy dozens per handshake, each dearer than the handshake's own, before it proved anything.
     */
    static final int MAX_SIGNATURE_CHECKS = 2;

    /**
     * The certificate sent that issued {@code subject}, by name; of several with that name (a CA renewed with a new
     * key, sent with its predecessor), the first whose key verifies the signature. Null when none was sent.
     */
    private static X509Certificate issuerAmong(X509Certificate[] chain, X509Certificate subject,
            List<X509Certificate> path, Collection<X509Certificate> anchors, int[] signatureChecks) {
        List<X509Certificate> named = new ArrayList<>(1);
        for (int i = 1; i < chain.length; i++) {
            X509Certificate candidate = chain[i];
            if (candidate.getSubjectX500Principal().equals(subject.getIssuerX500Principal())
                    && !anchors.contains(candidate) && !path.contains(candidate) && !named.contains(candidate)) {
                named.add(candidate);
            }
        }
        if (named.size() > 1) {
            // Only a choice costs a signature check; PKIX verifies the path it is given anyway.
            for (X509Certificate candidate : named) {
                if (signatureChecks[0]-- <= 0) {
                    break; // out of checks: the first of the name, for PKIX to judge
                }
                try {
                    subject.verify(candidate.getPublicKey());
                    return candidate;
                } catch (GeneralSecurityException e) {
                    // not this one: a forgery under the right name stays the fallback, for PKIX to refuse
                }
            }
        }
        return named.isEmpty() ? null : named.get(0);
    }
}
