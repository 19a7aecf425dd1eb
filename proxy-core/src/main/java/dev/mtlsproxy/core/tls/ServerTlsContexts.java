package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ServerTlsConfig;
import dev.mtlsproxy.config.TlsVersion;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;

/** Builds the server-side {@link SslContext} of a listener: one per configuration, shared by its connections. */
public final class ServerTlsContexts {

    /**
     * AEAD suites with forward secrecy only, for TLS 1.2. TLS 1.3 suites are all AEAD and are left to BoringSSL.
     * Order: ECDSA first (cheaper handshakes), AES-GCM before ChaCha20 (AES-NI on servers).
     */
    static final List<String> TLS12_CIPHERS = List.of(
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256");

    private ServerTlsContexts() {
    }

    /**
     * Loads the listener's key material and CAs and builds its context on the OpenSSL (BoringSSL) engine.
     *
     * @throws IllegalStateException when netty-tcnative cannot be loaded on this platform: we refuse to fall back
     *                               silently to the JDK engine, whose behaviour and speed differ
     */
    public static SslContext forListener(ServerTlsConfig tls, Clock clock)
            throws PemException, IOException, GeneralSecurityException {
        TlsEngine.requireOpenSsl();
        List<X509Certificate> chain = Pem.readCertificates(tls.certificate());
        PrivateKey key = Pem.readPrivateKey(tls.privateKey());
        List<X509Certificate> cas = new ArrayList<>();
        for (var bundle : tls.clientCAs()) {
            cas.addAll(Pem.readCertificates(bundle));
        }
        return SslContextBuilder.forServer(key, chain)
                .sslProvider(SslProvider.OPENSSL)
                .protocols(protocols(tls.minVersion()))
                .ciphers(TLS12_CIPHERS)
                .clientAuth(ClientAuth.REQUIRE)
                .trustManager(new ClientCertificateVerifier(cas, clock))
                .build();
    }

    static String[] protocols(TlsVersion minVersion) {
        return minVersion == TlsVersion.TLS_1_3
                ? new String[] {TlsVersion.TLS_1_3.protocolName()}
                : new String[] {TlsVersion.TLS_1_3.protocolName(), TlsVersion.TLS_1_2.protocolName()};
    }

    /** For the start-up log line. */
    public static String engineDescription() {
        return OpenSsl.isAvailable() ? "OpenSSL engine, " + OpenSsl.versionString() : "unavailable";
    }
}
