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

    private static void summary(JsonGenerator g, X509Certificate c) throws IOException {
        PeerIdentity id;
        try {
            id = PeerIdentities.fromCertificate(c);
        } catch (CertificateParsingException e) {
            field(g, "unreadable", e.getClass().getSimpleName());
            return;
        }
        field(g, "subject", id.subject());
        field(g, "issuer", id.issuer());
        field(g, "serial", id.serialHex());
        array(g, "uris", id.uriSans());
        array(g, "dns", id.dnsSans());
        field(g, "notAfter", id.notAfter().toString());
        field(g, "sha256", id.sha256());
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
