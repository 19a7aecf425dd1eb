package dev.mtlsproxy.core.identity;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
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
            g.writeStringField("event", "handshake_failed");
            g.writeStringField("listener", listener);
            g.writeStringField("remote", remote);
            g.writeStringField("reason", reason.label());
            g.writeStringField("detail", detail);
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
            g.writeStringField("unreadable", e.getClass().getSimpleName());
            return;
        }
        g.writeStringField("subject", id.subject());
        g.writeStringField("issuer", id.issuer());
        g.writeStringField("serial", id.serialHex());
        array(g, "uris", id.uriSans());
        array(g, "dns", id.dnsSans());
        g.writeStringField("notAfter", id.notAfter().toString());
        g.writeStringField("sha256", id.sha256());
    }

    private static void array(JsonGenerator g, String name, List<String> values) throws IOException {
        g.writeArrayFieldStart(name);
        for (String v : values) {
            g.writeString(v);
        }
        g.writeEndArray();
    }
}
