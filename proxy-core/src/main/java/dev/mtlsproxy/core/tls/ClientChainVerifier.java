package dev.mtlsproxy.core.tls;

import java.security.cert.X509Certificate;

/**
 * A listener's verdict on a client chain: the same check the handshake runs, usable again later, so that a reload
 * can re-judge the chains of connections that are already open against the new CAs and revocation data.
 */
public interface ClientChainVerifier {

    /**
     * @param chain as the client sent it, leaf first
     * @throws ClientCertificateRejectedException with the classified reason
     */
    void verify(X509Certificate[] chain) throws ClientCertificateRejectedException;
}
