package dev.mtlsproxy.app.admin;

import dev.mtlsproxy.core.proxy.TlsInventory;
import dev.mtlsproxy.core.tls.RevocationChecker;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;

/**
 * {@code /admin/certs}: every certificate and CRL the current configuration generation loaded ({@link TlsInventory},
 * taken per request, so a reload shows at once; no file is read here), with days left computed per call. Listener
 * certificates ({@code server}, {@code client_ca}), backend certificates ({@code backend_client},
 * {@code backend_ca}) and CRLs ({@code crl}), in the order and with the indexes of the expiry gauges, which read the
 * same inventory.
 */
final class CertificateInventory {

    private CertificateInventory() {
    }

    /**
     * One JSON object per certificate, then one per CRL. Public material only: names, serials, dates, file paths;
     * never a key, never a PEM.
     */
    static List<Map<String, Object>> describe(TlsInventory inventory, Instant now) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (TlsInventory.Entry e : inventory.certificates()) {
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
        for (TlsInventory.Crl crl : inventory.crls()) {
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
            // judged as the handshake judges it, as of now: one issued in the future counts once it is reached
            RevocationChecker.CrlStanding standing = crl.standing(now);
            m.put("counts", standing.counts());
            if (standing.why() != null) {
                m.put("why", standing.why());
            }
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
