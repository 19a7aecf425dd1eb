package dev.mtlsproxy.core.identity;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.security.auth.x500.X500Principal;

/**
 * The log line of a refused handshake, as JSON: the reason and a safe summary of what the client presented
 * (names, serial, dates, fingerprint: never the certificate itself), so an operator can tell a misissued
 * workload certificate from a scanner.
 */
final class HandshakeFailureLine {

    private static final JsonFactory JSON = new JsonFactory();

    private HandshakeFailureLine() {
    }

    static String json(String listener, String remote, HandshakeFailureReason reason, String detail,
            X509Certificate presented) {
        StringWriter out = new StringWriter(256);
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            field(g, "event", "handshake_failed");
            field(g, "listener", listener);
            field(g, "remote", remote);
            field(g, "reason", reason.label());
            field(g, "detail", detail);
            if (presented != null) {
                g.writeObjectFieldStart("certificate");
                summary(g, presented);
                g.writeEndObject();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString();
    }

    /**
     * Subject, issuer, serial, dates and fingerprint come straight from the certificate, so a certificate refused for
     * its names is still named in the log like any other; only its names need {@link PeerIdentities} to read them.
     */
    private static void summary(JsonGenerator g, X509Certificate c) throws IOException {
        field(g, "subject", c.getSubjectX500Principal().getName(X500Principal.RFC2253));
        field(g, "issuer", c.getIssuerX500Principal().getName(X500Principal.RFC2253));
        field(g, "serial", c.getSerialNumber().toString(16));
        try {
            PeerIdentity id = PeerIdentities.fromCertificate(c);
            array(g, "uris", id.uriSans());
            array(g, "dns", id.dnsSans());
        } catch (CertificateParsingException e) {
            // Our own text (which names and why), never the names themselves: they are what could not be read.
            field(g, "unreadable", e.getMessage());
        }
        field(g, "notAfter", c.getNotAfter().toInstant().toString());
        field(g, "sha256", PeerIdentities.sha256(c));
    }

    private static void array(JsonGenerator g, String name, List<String> values) throws IOException {
        g.writeArrayFieldStart(name);
        for (String v : values) {
            g.writeString(LogText.wellFormed(v));
        }
        g.writeEndArray();
    }

    /** Through {@link LogText}: a lone surrogate is written as U+FFFD, not as whatever logback makes of it. */
    private static void field(JsonGenerator g, String name, String value) throws IOException {
        g.writeStringField(name, LogText.wellFormed(value));
    }
}
