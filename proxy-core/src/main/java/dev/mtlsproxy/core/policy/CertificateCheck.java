package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.CertificateRequirements;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.time.Duration;
import java.time.Instant;

/** Requirements on the client certificate itself, compiled; {@link #NONE} when none are configured. */
record CertificateCheck(CertificateRequirements requirements) {

    static final CertificateCheck NONE = new CertificateCheck(null);

    static CertificateCheck of(CertificateRequirements requirements) {
        return requirements == null ? NONE : new CertificateCheck(requirements);
    }

    /** The first requirement the certificate fails, or null. Dates unknown (a described peer) are not judged. */
    Failure check(PeerIdentity peer, Instant now) {
        if (requirements == null) {
            return null;
        }
        if (requirements.clientAuthEku() && !peer.clientAuthEku()) {
            return new Failure(DenyReason.CERTIFICATE_NO_CLIENT_AUTH_EKU, "");
        }
        if (!requirements.keyTypes().isEmpty() && peer.keyType() != null
                && !requirements.keyTypes().contains(peer.keyType())) {
            return new Failure(DenyReason.CERTIFICATE_KEY_TYPE, peer.keyType() + " not in "
                    + requirements.keyTypes());
        }
        if (requirements.maxLifetime() != null && peer.notBefore() != null && peer.notAfter() != null) {
            Duration lifetime = Duration.between(peer.notBefore(), peer.notAfter());
            if (lifetime.compareTo(requirements.maxLifetime()) > 0) {
                return new Failure(DenyReason.CERTIFICATE_LIFETIME_TOO_LONG, "lifetime " + lifetime
                        + " exceeds " + requirements.maxLifetime());
            }
        }
        if (requirements.minRemainingLifetime() != null && peer.notAfter() != null) {
            Duration remaining = Duration.between(now, peer.notAfter());
            if (remaining.compareTo(requirements.minRemainingLifetime()) < 0) {
                return new Failure(DenyReason.CERTIFICATE_EXPIRES_TOO_SOON, "remaining " + remaining
                        + " below " + requirements.minRemainingLifetime());
            }
        }
        return null;
    }

    /** When the certificate comes within the required remaining lifetime of its end; null when none is required. */
    Instant lapsesAt(PeerIdentity peer) {
        return requirements == null || requirements.minRemainingLifetime() == null || peer.notAfter() == null
                ? null
                : peer.notAfter().minus(requirements.minRemainingLifetime());
    }

    record Failure(DenyReason reason, String detail) {
    }
}
