package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.core.http.InvalidResponseException;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.tls.BackendCertificateException;
import io.netty.channel.ConnectTimeoutException;
import io.netty.handler.ssl.NotSslRecordException;
import io.netty.handler.ssl.SslHandshakeTimeoutException;
import java.net.ConnectException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.UnresolvedAddressException;
import java.util.List;
import java.util.Locale;
import javax.net.ssl.SSLException;

/**
 * Why talking to a backend failed, in the words of the log line ("connection refused", "backend certificate not
 * trusted", "hostname mismatch: ...") and as the bounded {@code reason} label of the connect-error metric.
 */
public final class BackendFailures {

    private BackendFailures() {
    }

    /** Every {@code reason} of {@code backend_connect_errors_total}, each one {@link #connectReason} can return. */
    public static final List<String> CONNECT_REASONS = List.of("refused", "timeout", "tls", "other");

    /** The {@code reason} of {@code backend_connect_errors_total}: one of {@link #CONNECT_REASONS}. */
    public static String connectReason(Throwable cause) {
        if (cause instanceof ConnectTimeoutException || cause instanceof SslHandshakeTimeoutException) {
            return "timeout";
        }
        if (cause instanceof ConnectException && message(cause).contains("refused")) {
            return "refused";
        }
        return find(cause, SSLException.class) != null || find(cause, BackendCertificateException.class) != null
                ? "tls" : "other";
    }

    /** A short cause for the log, never a stack trace or a certificate dump. */
    public static String describe(Throwable cause) {
        if (cause instanceof ConnectTimeoutException) {
            return "connect timeout";
        }
        if (cause instanceof SslHandshakeTimeoutException) {
            return "TLS handshake timeout";
        }
        if (cause instanceof ConnectException) {
            String message = message(cause);
            return message.contains("refused") ? "connection refused" : "connect failed: " + clean(message);
        }
        BackendCertificateException refused = find(cause, BackendCertificateException.class);
        if (refused != null) {
            return refused.getMessage();
        }
        SSLException tls = find(cause, SSLException.class);
        if (tls != null) {
            return tls(tls);
        }
        if (cause instanceof InvalidResponseException invalid) {
            return "invalid response: " + invalid.getMessage();
        }
        if (cause instanceof ClosedChannelException) {
            return "backend closed the connection";
        }
        if (cause instanceof UnresolvedAddressException) {
            return "host name did not resolve when the configuration was loaded";
        }
        return cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": " + clean(cause.getMessage()));
    }

    /** BoringSSL names the alert a peer sent in the message, e.g. {@code SSLV3_ALERT_BAD_CERTIFICATE}. */
    private static String tls(SSLException e) {
        String m = message(e).toUpperCase(Locale.ROOT);
        if (m.contains("KEY_USAGE_BIT_INCORRECT")) {
            // BoringSSL's own check, before the certificate reaches the proxy's verifier (RFC 8446 4.4.2.2).
            return "backend certificate not for server authentication (key usage)";
        }
        if (m.contains("CERTIFICATE_REQUIRED")) {
            return "backend requires a client certificate";
        }
        if (m.contains("BAD_CERTIFICATE") || m.contains("UNKNOWN_CA") || m.contains("CERTIFICATE_UNKNOWN")
                || m.contains("UNSUPPORTED_CERTIFICATE") || m.contains("CERTIFICATE_EXPIRED")
                || m.contains("CERTIFICATE_REVOKED") || m.contains("ACCESS_DENIED")) {
            return "backend rejected the proxy's client certificate";
        }
        if (e instanceof NotSslRecordException || m.contains("WRONG_VERSION_NUMBER") || m.contains("HTTP_REQUEST")) {
            return "backend does not speak TLS";
        }
        if (m.contains("PROTOCOL_VERSION") || m.contains("UNSUPPORTED_PROTOCOL")
                || m.contains("NO_PROTOCOLS_AVAILABLE")) {
            return "no TLS version in common with the backend";
        }
        if (m.contains("HANDSHAKE_FAILURE")) {
            return "backend refused the TLS handshake (handshake_failure alert)";
        }
        return "TLS failure: " + clean(message(e)) + unexpected(e.getCause());
    }

    /**
     * What the engine wrapped: netty-tcnative reports anything but an SSLException out of a trust manager as "General
     * OpenSslEngine problem", which alone tells an operator nothing.
     */
    private static String unexpected(Throwable cause) {
        if (cause == null || cause instanceof SSLException) {
            return "";
        }
        return " (" + cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": "
                + clean(cause.getMessage())) + ")";
    }

    private static <T extends Throwable> T find(Throwable cause, Class<T> type) {
        for (Throwable t = cause; t != null; t = t.getCause()) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return null;
    }

    private static String message(Throwable t) {
        return t.getMessage() == null ? "" : t.getMessage();
    }

    /** One line, no quotes: it goes inside {@code cause="..."}. */
    private static String clean(String message) {
        String line = LogText.quoted(message.lines().findFirst().orElse(""));
        return line.length() > 200 ? line.substring(0, 200) + "..." : line;
    }
}
