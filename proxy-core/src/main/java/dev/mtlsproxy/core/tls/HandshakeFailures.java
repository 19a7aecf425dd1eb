package dev.mtlsproxy.core.tls;

import io.netty.handler.ssl.SslHandshakeTimeoutException;
import java.nio.channels.ClosedChannelException;
import java.util.Locale;
import java.util.Map;

/**
 * Classifies a failed handshake into a {@link HandshakeFailureReason}.
 *
 * <p>Rejections decided by our own verifier are classified by their exception type. Some failures happen inside
 * BoringSSL before any Java code runs (the client sent no certificate, or offered only old protocol versions); for
 * those the only signal netty-tcnative gives is BoringSSL's error string, which embeds a stable reason code such as
 * {@code PEER_DID_NOT_RETURN_A_CERTIFICATE}. We match those codes, never prose, and only in this class.
 */
public final class HandshakeFailures {

    private static final Map<String, HandshakeFailureReason> BORINGSSL_REASON_CODES = Map.of(
            "PEER_DID_NOT_RETURN_A_CERTIFICATE", HandshakeFailureReason.NO_CERTIFICATE,
            "UNSUPPORTED_PROTOCOL", HandshakeFailureReason.PROTOCOL_VERSION,
            "TLSV1_ALERT_PROTOCOL_VERSION", HandshakeFailureReason.PROTOCOL_VERSION,
            "WRONG_VERSION_NUMBER", HandshakeFailureReason.PROTOCOL_VERSION,
            "NO_SHARED_CIPHER", HandshakeFailureReason.PROTOCOL_VERSION,
            // None of the listener's key exchange groups is offered (groups: without a classical one, say).
            "NO_SHARED_GROUP", HandshakeFailureReason.PROTOCOL_VERSION,
            // Raised while checking the client's CertificateVerify, the only peer signature a server verifies.
            "BAD_SIGNATURE", HandshakeFailureReason.BAD_SIGNATURE,
            // The leaf's key usage does not allow the signature it made (no digitalSignature): a usage refusal.
            "KEY_USAGE_BIT_INCORRECT", HandshakeFailureReason.BAD_EKU);

    private HandshakeFailures() {
    }

    /** Cause chains can be cyclic; nothing real is deeper than this. */
    private static final int MAX_DEPTH = 16;

    /** The certificate a rejected client presented, or null (none sent, or refused before verification). */
    public static java.security.cert.X509Certificate presented(Throwable failure) {
        int depth = 0;
        for (Throwable t = failure; t != null && depth++ < MAX_DEPTH; t = t.getCause()) {
            if (t instanceof ClientCertificateRejectedException rejected) {
                return rejected.presented();
            }
        }
        return null;
    }

    public static HandshakeFailureReason classify(Throwable failure) {
        int depth = 0;
        for (Throwable t = failure; t != null && depth++ < MAX_DEPTH; t = t.getCause()) {
            if (t instanceof ClientCertificateRejectedException rejected) {
                return rejected.reason();
            }
            if (t instanceof SslHandshakeTimeoutException) {
                return HandshakeFailureReason.HANDSHAKE_TIMEOUT;
            }
            if (t instanceof ClosedChannelException) {
                // SslHandler fails the handshake with this when the connection closes before it is done
                return HandshakeFailureReason.CLIENT_CLOSED;
            }
        }
        depth = 0;
        for (Throwable t = failure; t != null && depth++ < MAX_DEPTH; t = t.getCause()) {
            String message = t.getMessage();
            if (message == null) {
                continue;
            }
            String upper = message.toUpperCase(Locale.ROOT);
            for (var entry : BORINGSSL_REASON_CODES.entrySet()) {
                if (upper.contains(entry.getKey())) {
                    return entry.getValue();
                }
            }
        }
        return HandshakeFailureReason.OTHER;
    }
}
