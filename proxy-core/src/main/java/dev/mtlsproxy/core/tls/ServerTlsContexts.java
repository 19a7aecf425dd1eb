package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.KeyExchangeGroup;
import dev.mtlsproxy.config.SessionResumption;
import dev.mtlsproxy.config.TlsVersion;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.OpenSslContextOption;
import io.netty.handler.ssl.OpenSslSessionContext;
import io.netty.handler.ssl.ReferenceCountedOpenSslEngine;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import io.netty.internal.tcnative.SSL;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.SSLException;

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
     * Builds the listener's context on the OpenSSL (BoringSSL) engine.
     *
     * @throws IllegalStateException when netty-tcnative cannot be loaded on this platform: we refuse to fall back
     *                               silently to the JDK engine, whose behaviour and speed differ
     */
    public static SslContext forListener(ListenerTls tls, Clock clock) throws SSLException {
        return forListener(tls, RevocationChecker.NONE, clock).context();
    }

    /**
     * A listener's TLS context and the client-chain check inside it, which a reload re-runs on open connections.
     *
     * @param tickets whether clients get session tickets ({@code sessionResumption: tickets})
     */
    public record ServerTls(SslContext context, ClientChainVerifier verifier, boolean tickets) {

        /** The TLS handler of one client connection. */
        public SslHandler newHandler(ByteBufAllocator alloc) {
            SslHandler handler = context.newHandler(alloc);
            if (!tickets) {
                // Per connection: netty-tcnative sets options on an SSL, not on a context Netty has built.
                // BoringSSL then sends no NewSessionTicket (TLS 1.3) and accepts none.
                SSL.setOptions(((ReferenceCountedOpenSslEngine) handler.engine()).sslPointer(), SSL.SSL_OP_NO_TICKET);
            }
            return handler;
        }
    }

    /** As {@link #forListener(ListenerTls, Clock)}, with revocation checked after path validation. */
    public static ServerTls forListener(ListenerTls tls, RevocationChecker revocation, Clock clock)
            throws SSLException {
        TlsEngine.requireOpenSsl();
        List<X509Certificate> cas = new ArrayList<>();
        Map<X509Certificate, String> anchorNames = new HashMap<>();
        for (ListenerTls.SourcedCertificate ca : tls.clientCAs()) {
            cas.add(ca.certificate());
            anchorNames.put(ca.certificate(), ca.anchor());
        }
        ClientCertificateVerifier verifier = new ClientCertificateVerifier(cas, anchorNames, revocation, clock);
        SslContext context = SslContextBuilder.forServer(tls.key(), tls.chain())
                .sslProvider(SslProvider.OPENSSL)
                .keyStoreType(IN_MEMORY_KEY_STORE)
                .protocols(protocols(tls.config().minVersion()))
                .ciphers(TLS12_CIPHERS)
                .clientAuth(ClientAuth.REQUIRE)
                .trustManager(verifier)
                .option(OpenSslContextOption.GROUPS, groups(tls.config().groups()))
                .build();
        // No server-side session cache, whatever the resumption setting: tickets need none, and a cache would keep
        // every client's session (with its certificate) in native memory for its lifetime, per listener.
        ((OpenSslSessionContext) context.sessionContext()).setSessionCacheEnabled(false);
        return new ServerTls(context, verifier, tls.config().sessionResumption() == SessionResumption.TICKETS);
    }

    /**
     * The type of the key store Netty puts our key and chain in on their way to BoringSSL. It never leaves memory and
     * its password is empty, so its protection buys nothing; the default, PKCS12, encrypts the key with 10,000
     * PBKDF2 rounds to store it and again to read it back: 50-100 ms per TLS context with a warm JIT, over 200 ms at
     * start-up, and again on every reload. JKS's key protection is a cheap digest scheme.
     */
    static final String IN_MEMORY_KEY_STORE = "JKS";

    static String[] protocols(TlsVersion minVersion) {
        return minVersion == TlsVersion.TLS_1_3
                ? new String[] {TlsVersion.TLS_1_3.protocolName()}
                : new String[] {TlsVersion.TLS_1_3.protocolName(), TlsVersion.TLS_1_2.protocolName()};
    }

    /**
     * Our own list, never Netty's default: that one changes between Netty releases (X25519MLKEM768 came first in
     * one), and what a listener negotiates must follow from its config alone.
     */
    static String[] groups(List<KeyExchangeGroup> groups) {
        return groups.stream().map(KeyExchangeGroup::boringSslName).toArray(String[]::new);
    }

    /** For the start-up log line. */
    public static String engineDescription() {
        return OpenSsl.isAvailable() ? "OpenSSL engine, " + OpenSsl.versionString() : "unavailable";
    }
}
