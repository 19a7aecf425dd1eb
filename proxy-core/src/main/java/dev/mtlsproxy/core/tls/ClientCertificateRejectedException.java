package dev.mtlsproxy.core.tls;

import java.security.cert.CertificateException;

/**
 * Thrown by {@link ClientCertificateVerifier}; carries the classified reason so that nothing downstream has to
 * interpret exception messages.
 */
public final class ClientCertificateRejectedException extends CertificateException {

    private static final long serialVersionUID = 1L;

    private final HandshakeFailureReason reason;

    ClientCertificateRejectedException(HandshakeFailureReason reason, String detail, Throwable cause) {
        super(reason.label() + ": " + detail, cause);
        this.reason = reason;
    }

    public HandshakeFailureReason reason() {
        return reason;
    }
}
