package dev.mtlsproxy.core.tls;

import java.security.cert.CertificateException;

/**
 * A backend's certificate was refused by the proxy. The message is the cause as logs show it ("backend certificate
 * not trusted", "hostname mismatch: ...", "SPIFFE ID mismatch: ..."), short and free of certificate dumps.
 */
public final class BackendCertificateException extends CertificateException {

    private static final long serialVersionUID = 1L;

    BackendCertificateException(String reason, Throwable cause) {
        super(reason, cause);
    }
}
