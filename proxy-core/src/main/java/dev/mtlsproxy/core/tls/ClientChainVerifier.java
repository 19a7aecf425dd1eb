package dev.mtlsproxy.core.tls;

import java.security.cert.Certificate;
import java.security.cert.X509Certificate;

/**
 * A listener's verdict on a client chain: the same check the handshake runs, usable again later, so that a reload
 * can re-judge the chains of connections that are already open against the new CAs and revocation data.
 */
public interface ClientChainVerifier {

    /**
     * Certificates of a client's chain the handshake hands the verifier: netty-tcnative's verify depth, the first ten
     * the client sent. Judging the chain again (a reload, a resumed session) must read the same ones.
     */
    int CERTIFICATES_READ = 10;

    /**
     * @param chain as the client sent it, leaf first
     * @throws ClientCertificateRejectedException with the classified reason
     */
    void verify(X509Certificate[] chain) throws ClientCertificateRejectedException;

    /**
     * What the handshake that just accepted this chain derived from it: parsed certificates and identity, shared
     * with every connection presenting the same bytes. No check is repeated here.
     *
     * @param presented the peer certificates of a handshake this verifier accepted, leaf first
     * @return null when the chain is not (or no longer) kept; the caller then derives the identity itself
     */
    VerifiedChain recall(Certificate[] presented);
}
