package dev.mtlsproxy.config;

import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;

/** Who issued a certificate, as the proxy decides it wherever it builds or judges a path. */
public final class Issuers {

    private Issuers() {
    }

    /**
     * Whether {@code issuer} issued {@code certificate}: by name and by signature, so that a CA of another key under
     * the issuer's name (a renewed CA, or one forged to take its name) is no issuer.
     */
    public static boolean issued(X509Certificate issuer, X509Certificate certificate) {
        if (!issuer.getSubjectX500Principal().equals(certificate.getIssuerX500Principal())) {
            return false;
        }
        try {
            certificate.verify(issuer.getPublicKey());
            return true;
        } catch (GeneralSecurityException e) {
            return false;
        }
    }
}
