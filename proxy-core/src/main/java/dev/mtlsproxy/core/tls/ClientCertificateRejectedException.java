package dev.mtlsproxy.core.tls;

import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;

/**
 * Thrown by {@link ClientCertificateVerifier}; carries the classified reason so that nothing downstream has to
 * interpret exception messages.
 */
public final class ClientCertificateRejectedException extends CertificateException {

    private static final long serialVersionUID = 1L;

    private final HandshakeFailureReason reason;
    @SuppressWarnings("serial") // X509Certificate is serialisable in practice; nobody serialises this anyway
    private final X509Certificate presented;

    ClientCertificateRejectedException(HandshakeFailureReason reason, String detail, Throwable cause,
            X509Certificate presented) {
        super(reason.label() + ": " + detail, cause);
        this.reason = reason;
        this.presented = presented;
    }

    public HandshakeFailureReason reason() {
        return reason;
    }

    /** The leaf the client presented, for a safe summary in the log; null when it presented none. */
    public X509Certificate presented() {
        return presented;
    }
}
