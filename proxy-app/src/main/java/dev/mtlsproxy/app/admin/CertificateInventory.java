package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.core.proxy.ProxyServer;
import dev.mtlsproxy.core.tls.BackendTls;
import dev.mtlsproxy.core.tls.ListenerTls;
import dev.mtlsproxy.core.tls.RevocationChecker;
import java.nio.file.Path;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;

/**
 * Every certificate and CRL the proxy depends on, for {@code /admin/certs}: what the current configuration
 * generation loaded (taken per request, so a reload shows at once; no file is read here), days left computed per
 * call. Listener certificates ({@code server}, {@code client_ca}), backend certificates ({@code backend_client},
 * {@code backend_ca}) and CRLs ({@code crl}), in the order and with the indexes of the expiry gauges.
 *
 * @param certificates every certificate in use
 * @param crls         every CRL checked, by anchor, in file order
 */
public record CertificateInventory(List<Entry> certificates, List<Crl> crls) {

    /**
     * One certificate in use, owned by a listener or a backend (the other is null).
     *
     * @param index its position within its role and owner, as the expiry gauge's {@code index} label
     */
    public record Entry(String role, String listener, String backend, int index, Path file,
            X509Certificate certificate) {
    }

    /**
     * One CRL in use.
     *
     * @param index its position among its anchor's CRLs, as the nextUpdate gauge's {@code index} label
     */
    public record Crl(String anchor, int index, Path file, X509CRL crl) {
    }

    public CertificateInventory {
        certificates = List.copyOf(certificates);
        crls = List.copyOf(crls);
    }

    /** What the running proxy's current generation loaded; no file is read again. */
    public static CertificateInventory of(ProxyServer server) {
        List<Entry> entries = new ArrayList<>();
        for (var named : server.listenerTls().entrySet()) {
            String listener = named.getKey();
            ListenerTls tls = named.getValue();
            int i = 0;
            for (X509Certificate c : tls.chain()) {
                entries.add(new Entry("server", listener, null, i++, tls.config().certificate(), c));
            }
            i = 0;
            for (ListenerTls.SourcedCertificate ca : tls.clientCAs()) {
                entries.add(new Entry("client_ca", listener, null, i++, ca.file(), ca.certificate()));
            }
        }
        for (var named : server.backendTls().entrySet()) {
            String backend = named.getKey();
            BackendTls tls = named.getValue();
            int i = 0;
            for (X509Certificate c : tls.clientChain()) {
                entries.add(new Entry("backend_client", null, backend, i++, tls.config().certificate(), c));
            }
            i = 0;
            for (BackendTls.SourcedCertificate ca : tls.serverCAs()) {
                entries.add(new Entry("backend_ca", null, backend, i++, ca.file(), ca.certificate()));
            }
        }
        List<Crl> crls = new ArrayList<>();
        Map<String, Integer> perAnchor = new HashMap<>();
        for (RevocationChecker.SourcedCrl crl : server.crls()) {
            int index = perAnchor.merge(crl.anchor(), 1, Integer::sum) - 1;
            crls.add(new Crl(crl.anchor(), index, crl.file(), crl.crl()));
        }
        return new CertificateInventory(entries, crls);
    }

    /**
     * One JSON object per certificate, then one per CRL. Public material only: names, serials, dates, file paths;
     * never a key, never a PEM.
     */
    List<Map<String, Object>> describe(Instant now) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Entry e : certificates) {
            X509Certificate c = e.certificate();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("role", e.role());
            if (e.listener() != null) {
                m.put("listener", e.listener());
            }
            if (e.backend() != null) {
                m.put("backend", e.backend());
            }
            m.put("index", e.index());
            m.put("file", e.file().toString());
            m.put("subject", c.getSubjectX500Principal().getName(X500Principal.RFC2253));
            m.put("issuer", c.getIssuerX500Principal().getName(X500Principal.RFC2253));
            m.put("sans", sans(c));
            m.put("serial", c.getSerialNumber().toString(16));
            m.put("notAfter", c.getNotAfter().toInstant().toString());
            m.put("daysLeft", Duration.between(now, c.getNotAfter().toInstant()).toDays());
            out.add(m);
        }
        for (Crl crl : crls) {
            X509CRL c = crl.crl();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("role", "crl");
            m.put("anchor", crl.anchor());
            m.put("index", crl.index());
            m.put("file", crl.file().toString());
            m.put("issuer", c.getIssuerX500Principal().getName(X500Principal.RFC2253));
            m.put("thisUpdate", c.getThisUpdate().toInstant().toString());
            // nextUpdate is optional in X.509; a CRL without one never goes stale by date.
            Instant nextUpdate = c.getNextUpdate() == null ? null : c.getNextUpdate().toInstant();
            m.put("nextUpdate", nextUpdate == null ? null : nextUpdate.toString());
            m.put("daysLeft", nextUpdate == null ? null : Duration.between(now, nextUpdate).toDays());
            m.put("revoked", c.getRevokedCertificates() == null ? 0 : c.getRevokedCertificates().size());
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
