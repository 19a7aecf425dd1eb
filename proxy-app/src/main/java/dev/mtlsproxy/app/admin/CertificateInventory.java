package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.core.proxy.ProxyServer;
import dev.mtlsproxy.core.tls.ListenerTls;
import java.nio.file.Path;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;

/** Every certificate the proxy uses, for {@code /admin/certs}: read once at start, days left computed per call. */
public final class CertificateInventory {

    /** One certificate in use. */
    public record Entry(String role, String listener, Path file, X509Certificate certificate) {
    }

    private CertificateInventory() {
    }

    /** What the running proxy loaded; no file is read again. */
    public static List<Entry> of(ProxyServer server) {
        List<Entry> entries = new ArrayList<>();
        for (var named : server.listenerTls().entrySet()) {
            String listener = named.getKey();
            ListenerTls tls = named.getValue();
            for (X509Certificate c : tls.chain()) {
                entries.add(new Entry("server", listener, tls.config().certificate(), c));
            }
            for (ListenerTls.SourcedCertificate ca : tls.clientCAs()) {
                entries.add(new Entry("client_ca", listener, ca.file(), ca.certificate()));
            }
        }
        return entries;
    }

    static List<Map<String, Object>> describe(List<Entry> entries, Instant now) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Entry e : entries) {
            X509Certificate c = e.certificate();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("role", e.role());
            m.put("listener", e.listener());
            m.put("file", e.file().toString());
            m.put("subject", c.getSubjectX500Principal().getName(X500Principal.RFC2253));
            m.put("issuer", c.getIssuerX500Principal().getName(X500Principal.RFC2253));
            m.put("sans", sans(c));
            m.put("serial", c.getSerialNumber().toString(16));
            m.put("notAfter", c.getNotAfter().toInstant().toString());
            m.put("daysLeft", Duration.between(now, c.getNotAfter().toInstant()).toDays());
            out.add(m);
        }
        return out;
    }

    private static List<String> sans(X509Certificate c) {
        List<String> sans = new ArrayList<>();
        try {
            Collection<List<?>> all = c.getSubjectAlternativeNames();
            if (all != null) {
                for (List<?> san : all) {
                    sans.add(String.valueOf(san.get(1)));
                }
            }
        } catch (CertificateParsingException e) {
            sans.add("(unreadable)");
        }
        return sans;
    }
}
