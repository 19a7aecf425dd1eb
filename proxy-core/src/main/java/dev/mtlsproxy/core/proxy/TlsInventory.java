package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.tls.BackendTls;
import dev.mtlsproxy.core.tls.ListenerTls;
import dev.mtlsproxy.core.tls.RevocationChecker;
import java.nio.file.Path;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Every certificate and CRL one configuration generation loaded, each with the role, owner and index under which it
 * is reported. The expiry gauges and {@code /admin/certs} both read this one enumeration, so an alert's labels always
 * lead to the same entry in the inventory.
 *
 * @param certificates listener certificates ({@code server}, {@code client_ca}), then backend certificates
 *                     ({@code backend_client}, {@code backend_ca})
 * @param crls         every CRL checked, by anchor, in file order
 */
public record TlsInventory(List<Entry> certificates, List<Crl> crls) {

    /**
     * One certificate in use, owned by a listener or a backend (the other is null).
     *
     * @param index its position within its role and owner
     */
    public record Entry(String role, String listener, String backend, int index, Path file,
            X509Certificate certificate) {
    }

    /**
     * One CRL in use.
     *
     * @param index      its position among its anchor's CRLs
     * @param anchorCAs  the CA certificates of its anchor, as the listeners trusting it loaded them
     * @param revocation the generation's checker, which judges it
     */
    public record Crl(String anchor, int index, Path file, X509CRL crl, List<X509Certificate> anchorCAs,
            RevocationChecker revocation) {

        public Crl {
            anchorCAs = List.copyOf(anchorCAs);
        }

        /** Whether it counts for any certificate as of {@code now}, by the rules the handshake applies. */
        public RevocationChecker.CrlStanding standing(Instant now) {
            return revocation.standing(crl, anchorCAs, now);
        }
    }

    public TlsInventory {
        certificates = List.copyOf(certificates);
        crls = List.copyOf(crls);
    }

    static TlsInventory of(Map<String, ListenerGeneration> listeners, Collection<Backend> backends,
            RevocationChecker revocation) {
        List<Entry> entries = new ArrayList<>();
        listeners.forEach((listener, generation) -> {
            ListenerTls tls = generation.tls();
            int i = 0;
            for (X509Certificate c : tls.chain()) {
                entries.add(new Entry("server", listener, null, i++, tls.config().certificate(), c));
            }
            i = 0;
            for (ListenerTls.SourcedCertificate ca : tls.clientCAs()) {
                entries.add(new Entry("client_ca", listener, null, i++, ca.file(), ca.certificate()));
            }
        });
        for (Backend backend : backends) {
            BackendTls tls = backend.tls();
            if (tls == null) {
                continue;
            }
            int i = 0;
            for (X509Certificate c : tls.clientChain()) {
                entries.add(new Entry("backend_client", null, backend.name(), i++, tls.config().certificate(), c));
            }
            i = 0;
            for (BackendTls.SourcedCertificate ca : tls.serverCAs()) {
                entries.add(new Entry("backend_ca", null, backend.name(), i++, ca.file(), ca.certificate()));
            }
        }
        Map<String, Set<X509Certificate>> anchorCAs = new HashMap<>();
        listeners.values().forEach(generation -> generation.tls().clientCAs().forEach(ca -> anchorCAs
                .computeIfAbsent(ca.anchor(), k -> new LinkedHashSet<>()).add(ca.certificate())));
        List<Crl> crls = new ArrayList<>();
        Map<String, Integer> perAnchor = new HashMap<>();
        for (RevocationChecker.SourcedCrl crl : revocation.crls()) {
            int index = perAnchor.merge(crl.anchor(), 1, Integer::sum) - 1;
            crls.add(new Crl(crl.anchor(), index, crl.file(), crl.crl(),
                    List.copyOf(anchorCAs.getOrDefault(crl.anchor(), Set.of())), revocation));
        }
        return new TlsInventory(entries, crls);
    }
}
