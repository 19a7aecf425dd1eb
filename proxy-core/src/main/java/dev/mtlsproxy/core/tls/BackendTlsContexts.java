package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.BackendTlsConfig;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.OpenSslContextOption;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.SSLException;

/**
 * Builds the client-side {@link SslContext} the proxy uses towards one backend: once per configuration, shared by
 * every connection to every endpoint of that backend, on the same BoringSSL engine as the listeners. The files are
 * read by {@link BackendTls}.
 */
final class BackendTlsContexts {

    private BackendTlsContexts() {
    }

    /**
     * @param clientChain the proxy's client certificate chain, leaf first; empty without mTLS to the backend
     * @param clientKey   its key, or null
     * @throws IllegalStateException when netty-tcnative is not available (no silent fall-back to the JDK engine)
     */
    static SslContext build(BackendTlsConfig tls, List<X509Certificate> serverCAs,
            List<X509Certificate> clientChain, PrivateKey clientKey) throws GeneralSecurityException, SSLException {
        TlsEngine.requireOpenSsl();
        SslContextBuilder builder = SslContextBuilder.forClient()
                .sslProvider(SslProvider.OPENSSL)
                .protocols(ServerTlsContexts.protocols(tls.minVersion()))
                .ciphers(ServerTlsContexts.TLS12_CIPHERS)
                .option(OpenSslContextOption.GROUPS, ServerTlsContexts.groups(tls.groups()))
                .trustManager(new BackendCertificateVerifier(serverCAs, tls.spiffeId()))
                // Netty 4.2 verifies host names by default; say so explicitly, and turn it off only when asked.
                .endpointIdentificationAlgorithm(tls.verifyHostname() ? "HTTPS" : null);
        if (!clientChain.isEmpty()) {
            builder.keyManager(clientKey, clientChain).keyStoreType(ServerTlsContexts.IN_MEMORY_KEY_STORE);
        }
        return builder.build();
    }
}
