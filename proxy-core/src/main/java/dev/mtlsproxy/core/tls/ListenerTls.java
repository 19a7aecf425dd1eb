package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ServerTlsConfig;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

/**
 * A listener's key material, read from disk once per configuration and shared by everything that needs it: the
 * TLS context, the XFCC "By" value, certificate metrics and the admin inventory. Deliberately not a record: its
 * string form must never include the key.
 */
public final class ListenerTls {

    /** A certificate and the file it came from. */
    public record SourcedCertificate(Path file, X509Certificate certificate) {
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

    public static ListenerTls load(ServerTlsConfig config) throws PemException {
        List<SourcedCertificate> cas = new ArrayList<>();
        for (Path bundle : config.clientCAs()) {
            for (X509Certificate ca : Pem.readCertificates(bundle)) {
                cas.add(new SourcedCertificate(bundle, ca));
            }
        }
        return new ListenerTls(config, Pem.readCertificates(config.certificate()), Pem.readPrivateKey(
                config.privateKey()), cas);
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

    @Override
    public String toString() {
        return "ListenerTls[certificate=" + config.certificate() + ", key=***]";
    }
}
