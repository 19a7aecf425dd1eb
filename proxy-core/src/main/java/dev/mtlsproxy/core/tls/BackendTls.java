package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import io.netty.handler.ssl.SslContext;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SSLException;

/**
 * A backend's TLS material, read from disk once per configuration generation, and the client {@link SslContext}
 * built from it: what the connections use, the certificate expiry gauge and the admin inventory all describe the
 * same files as read at the same time. Deliberately not a record: its string form must never include the key.
 */
public final class BackendTls {

    /** A certificate and the file it was read from. */
    public record SourcedCertificate(Path file, X509Certificate certificate) {
    }

    private final BackendTlsConfig config;
    private final List<SourcedCertificate> serverCAs;
    private final List<X509Certificate> clientChain;
    private final PrivateKey clientKey;
    private final SslContext context;

    private BackendTls(BackendTlsConfig config, List<SourcedCertificate> serverCAs, List<X509Certificate> clientChain,
            PrivateKey clientKey, SslContext context) {
        this.config = config;
        this.serverCAs = List.copyOf(serverCAs);
        this.clientChain = List.copyOf(clientChain);
        this.clientKey = clientKey;
        this.context = context;
    }

    /**
     * Reads the CA bundles and the client certificate and key, then builds the context. Call off the event loops.
     *
     * @throws PemException when a file is unreadable or invalid
     * @throws InvalidKeyException when the key is not the client certificate's (a rotation caught half-way)
     */
    public static BackendTls load(BackendTlsConfig config) throws PemException, GeneralSecurityException,
            SSLException {
        return load(config, null);
    }

    /**
     * As {@link #load(BackendTlsConfig)}, but returns {@code previous} itself when the files still hold the same
     * certificates and key: an unchanged backend keeps its context and its warm connections, a backend whose files
     * were rotated in place (same paths, new content) gets the new material.
     *
     * @param previous the material the running generation loaded for the same configuration, or null
     */
    public static BackendTls load(BackendTlsConfig config, BackendTls previous) throws PemException,
            GeneralSecurityException, SSLException {
        List<SourcedCertificate> cas = new ArrayList<>();
        for (Path bundle : config.serverCAs()) {
            for (X509Certificate ca : Pem.readCertificates(bundle)) {
                cas.add(new SourcedCertificate(bundle, ca));
            }
        }
        List<X509Certificate> chain = List.of();
        PrivateKey key = null;
        if (config.certificate() != null) {
            chain = Pem.readCertificates(config.certificate());
            key = Pem.readPrivateKey(config.privateKey());
            if (!Pem.keyMatchesCertificate(key, chain.get(0))) {
                throw new InvalidKeyException(config.privateKey() + ": not the private key of "
                        + config.certificate());
            }
        }
        if (previous != null && previous.config.equals(config) && sameMaterial(previous, cas, chain, key)) {
            return previous;
        }
        return new BackendTls(config, cas, chain, key, BackendTlsContexts.build(config, certificates(cas), chain,
                key));
    }

    /** Certificates compare by their encoding ({@link java.security.cert.Certificate#equals}), keys likewise. */
    private static boolean sameMaterial(BackendTls previous, List<SourcedCertificate> cas,
            List<X509Certificate> chain, PrivateKey key) {
        if (!certificates(previous.serverCAs).equals(certificates(cas)) || !previous.clientChain.equals(chain)) {
            return false;
        }
        if (previous.clientKey == null || key == null) {
            return previous.clientKey == key;
        }
        return Arrays.equals(previous.clientKey.getEncoded(), key.getEncoded());
    }

    private static List<X509Certificate> certificates(List<SourcedCertificate> sourced) {
        return sourced.stream().map(SourcedCertificate::certificate).toList();
    }

    public BackendTlsConfig config() {
        return config;
    }

    /** The context every connection to every https endpoint of the backend uses. */
    public SslContext context() {
        return context;
    }

    /** The CAs the backend's certificate must chain to, in bundle order. */
    public List<SourcedCertificate> serverCAs() {
        return serverCAs;
    }

    /** The proxy's own client certificate chain towards this backend, leaf first; empty without mTLS. */
    public List<X509Certificate> clientChain() {
        return clientChain;
    }

    @Override
    public String toString() {
        return "BackendTls[serverCAs=" + config.serverCAs() + ", certificate=" + config.certificate()
                + (clientKey == null ? "" : ", key=***") + "]";
    }
}
