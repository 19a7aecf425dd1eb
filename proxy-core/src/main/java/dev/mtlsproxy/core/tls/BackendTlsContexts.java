package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

/**
 * Builds the client-side {@link SslContext} the proxy uses towards one backend: once per configuration, shared by
 * every connection to every endpoint of that backend, on the same BoringSSL engine as the listeners.
 */
public final class BackendTlsContexts {

    private BackendTlsContexts() {
    }

    /**
     * @throws IllegalStateException when netty-tcnative is not available (no silent fall-back to the JDK engine)
     */
    public static SslContext forBackend(BackendTlsConfig tls) throws PemException, GeneralSecurityException,
            javax.net.ssl.SSLException {
        TlsEngine.requireOpenSsl();
        List<X509Certificate> cas = new ArrayList<>();
        for (Path bundle : tls.serverCAs()) {
            cas.addAll(Pem.readCertificates(bundle));
        }
        SslContextBuilder builder = SslContextBuilder.forClient()
                .sslProvider(SslProvider.OPENSSL)
                .protocols(ServerTlsContexts.protocols(tls.minVersion()))
                .ciphers(ServerTlsContexts.TLS12_CIPHERS)
                .trustManager(new BackendCertificateVerifier(cas, tls.spiffeId()))
                // Netty 4.2 verifies host names by default; say so explicitly, and turn it off only when asked.
                .endpointIdentificationAlgorithm(tls.verifyHostname() ? "HTTPS" : null);
        if (tls.certificate() != null) {
            builder.keyManager(Pem.readPrivateKey(tls.privateKey()), Pem.readCertificates(tls.certificate()));
        }
        return builder.build();
    }
}
