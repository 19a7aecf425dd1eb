package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.core.identity.PeerIdentities;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertPathValidatorException.BasicReason;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.X509Certificate;
import java.util.Collection;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Verifies a backend's certificate: PKIX path validation against the configured CAs only (never the JDK's default
 * trust store), the serverAuth usage, the host name (DNS or IP SAN, when the engine asks for endpoint
 * identification), and optionally the backend's SPIFFE ID.
 *
 * <p>Path validation and host name matching are the JDK's own PKIX trust manager, not a re-implementation; this class
 * adds the SPIFFE check and turns every refusal into a {@link BackendCertificateException} whose message says which
 * check failed, for the log line of the failed request. Thread-safe; one per backend TLS context.
 */
final class BackendCertificateVerifier extends X509ExtendedTrustManager {

    private final X509ExtendedTrustManager pkix;
    private final String spiffeId;

    /**
     * @param trustedCAs the only anchors a backend certificate may chain to; at least one
     * @param spiffeId   the SPIFFE ID the backend's certificate must carry, or null
     */
    BackendCertificateVerifier(Collection<X509Certificate> trustedCAs, String spiffeId)
            throws GeneralSecurityException {
        if (trustedCAs.isEmpty()) {
            throw new IllegalArgumentException("at least one trusted CA is required");
        }
        KeyStore anchors = KeyStore.getInstance(KeyStore.getDefaultType());
        try {
            anchors.load(null, null);
        } catch (java.io.IOException e) {
            throw new GeneralSecurityException("cannot create an empty key store", e);
        }
        int i = 0;
        for (X509Certificate ca : trustedCAs) {
            anchors.setCertificateEntry("ca-" + i++, ca);
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance("PKIX");
        factory.init(anchors);
        X509ExtendedTrustManager found = null;
        for (TrustManager tm : factory.getTrustManagers()) {
            if (tm instanceof X509ExtendedTrustManager x) {
                found = x;
            }
        }
        if (found == null) {
            throw new GeneralSecurityException("the PKIX trust manager factory offers no X509ExtendedTrustManager");
        }
        this.pkix = found;
        this.spiffeId = spiffeId;
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        try {
            pkix.checkServerTrusted(chain, authType, engine);
        } catch (CertificateException e) {
            throw classify(e, chain, authType, engine);
        }
        checkSpiffeId(chain[0]);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        try {
            pkix.checkServerTrusted(chain, authType, socket);
        } catch (CertificateException e) {
            throw new BackendCertificateException(pathProblem(e), e);
        }
        checkSpiffeId(chain[0]);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        try {
            pkix.checkServerTrusted(chain, authType);
        } catch (CertificateException e) {
            throw new BackendCertificateException(pathProblem(e), e);
        }
        checkSpiffeId(chain[0]);
    }

    /**
     * The JDK reports a failed path and a failed name alike; validating the path alone tells them apart. Done only
     * on failure, so a good handshake validates once.
     */
    private BackendCertificateException classify(CertificateException e, X509Certificate[] chain, String authType,
            SSLEngine engine) {
        if (e instanceof BackendCertificateException b) {
            return b;
        }
        String identification = engine == null ? null : engine.getSSLParameters().getEndpointIdentificationAlgorithm();
        if (identification == null || identification.isEmpty()) {
            return new BackendCertificateException(pathProblem(e), e);
        }
        try {
            pkix.checkServerTrusted(chain, authType);
        } catch (CertificateException pathFailure) {
            return new BackendCertificateException(pathProblem(pathFailure), e);
        }
        return new BackendCertificateException("hostname mismatch: the certificate is not for "
                + engine.getPeerHost(), e);
    }

    private static String pathProblem(CertificateException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CertificateExpiredException) {
                return "backend certificate expired";
            }
            if (t instanceof CertificateNotYetValidException) {
                return "backend certificate not yet valid";
            }
            if (t instanceof CertPathValidatorException v) {
                if (v.getReason() == BasicReason.EXPIRED) {
                    return "backend certificate expired";
                }
                if (v.getReason() == BasicReason.NOT_YET_VALID) {
                    return "backend certificate not yet valid";
                }
            }
            String message = t.getMessage();
            if (message != null && message.contains("Extended key usage")) {
                return "backend certificate not for server authentication (extended key usage)";
            }
        }
        return "backend certificate not trusted";
    }

    private void checkSpiffeId(X509Certificate leaf) throws CertificateException {
        if (spiffeId == null) {
            return;
        }
        String presented = PeerIdentities.fromCertificate(leaf).spiffeId();
        if (!spiffeId.equals(presented)) {
            throw new BackendCertificateException("SPIFFE ID mismatch: expected " + spiffeId + ", the certificate has "
                    + (presented == null ? "none" : presented), null);
        }
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("this trust manager only verifies backends");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        throw new CertificateException("this trust manager only verifies backends");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        throw new CertificateException("this trust manager only verifies backends");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return pkix.getAcceptedIssuers();
    }
}
