package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ServerTlsConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import java.nio.file.Path;
import java.security.InvalidKeyException;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A listener's key material, read from disk once per configuration and shared by everything that needs it: the
 * TLS context, the XFCC "By" value, certificate metrics and the admin inventory. Deliberately not a record: its
 * string form must never include the key.
 */
public final class ListenerTls {

    /** A client CA, the file it came from, and the trust anchor it belongs to. */
    public record SourcedCertificate(Path file, X509Certificate certificate, String anchor) {
    }

    private final ServerTlsConfig config;
    private final List<X509Certificate> chain;
    private final PrivateKey key;
    private final List<SourcedCertificate> clientCAs;

    private ListenerTls(ServerTlsConfig config, List<X509Certificate> chain, PrivateKey key,
            List<SourcedCertificate> clientCAs) {
        this.config = config;
        this.chain = List.copyOf(chain);
        this.key = key;
        this.clientCAs = List.copyOf(clientCAs);
    }

    /**
     * Reads the listener's files and the CA bundles of the anchors it trusts (all of them unless it names some). The
     * key is checked against the certificate here as well as in validation: on a reload the files may change between
     * the two reads (a rotation caught half-way).
     *
     * @throws PemException when a file is unreadable or invalid
     * @throws InvalidKeyException when the key is not the certificate's
     */
    public static ListenerTls load(ServerTlsConfig config, Map<String, TrustAnchorConfig> anchors)
            throws PemException, InvalidKeyException {
        List<SourcedCertificate> cas = new ArrayList<>();
        for (Map.Entry<String, TrustAnchorConfig> anchor : new TreeMap<>(anchors).entrySet()) {
            if (!config.trustAnchors().isEmpty() && !config.trustAnchors().contains(anchor.getKey())) {
                continue;
            }
            Path bundle = anchor.getValue().caBundle();
            for (X509Certificate ca : Pem.readCertificates(bundle)) {
                cas.add(new SourcedCertificate(bundle, ca, anchor.getKey()));
            }
        }
        List<X509Certificate> chain = Pem.readCertificates(config.certificate());
        PrivateKey key = Pem.readPrivateKey(config.privateKey());
        if (!Pem.keyMatchesCertificate(key, chain.get(0))) {
            throw new InvalidKeyException(config.privateKey() + ": not the private key of " + config.certificate());
        }
        return new ListenerTls(config, chain, key, cas);
    }

    public ServerTlsConfig config() {
        return config;
    }

    /** The served chain, leaf first. */
    public List<X509Certificate> chain() {
        return chain;
    }

    PrivateKey key() {
        return key;
    }

    public List<SourcedCertificate> clientCAs() {
        return clientCAs;
    }

    /** The client CAs by anchor, for attributing verified chains. */
    public TrustAnchors trustAnchors() {
        Map<X509Certificate, String> anchorOf = new HashMap<>();
        for (SourcedCertificate ca : clientCAs) {
            anchorOf.put(ca.certificate(), ca.anchor());
        }
        return new TrustAnchors(anchorOf);
    }

    @Override
    public String toString() {
        return "ListenerTls[certificate=" + config.certificate() + ", key=***]";
    }
}
