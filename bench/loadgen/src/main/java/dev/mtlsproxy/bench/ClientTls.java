package dev.mtlsproxy.bench;

import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.OpenSslCachingX509KeyManagerFactory;
import io.netty.handler.ssl.OpenSslContextOption;
import io.netty.handler.ssl.OpenSslSessionContext;
import io.netty.handler.ssl.ReferenceCountedOpenSslEngine;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.util.KeyManagerFactoryWrapper;
import io.netty.internal.tcnative.SSL;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * The client's TLS context: BoringSSL, the server verified against the bench CA, a client certificate presented.
 *
 * <p>The client must not be the bottleneck of a handshake benchmark on a machine it shares with the servers, so it
 * avoids the two costs a plain {@code SslContextBuilder.forClient().keyManager(cert, key).trustManager(ca)} pays
 * on every handshake: re-encoding its key material for BoringSSL (a caching key manager converts it once), and a
 * full PKIX validation in Java of a server certificate it has already validated (see {@link VerifiedOnce}). Its
 * certificate is always sent, including to a server that does not trust its CA (see {@link AlwaysPresent}).
 */
final class ClientTls {

    private ClientTls() {
    }

    /**
     * @param resume false: every new connection is a full handshake; true: the client keeps the sessions (TLS 1.3
     *               tickets) servers give it, per host and port, and offers one on its next connection there
     */
    static SslContext create(Path ca, Path cert, Path key, boolean resume) throws GeneralSecurityException,
            IOException {
        if (!OpenSsl.isAvailable()) {
            // The JDK engine would make the client, not the servers, the bottleneck on handshakes.
            throw new IllegalStateException("netty-tcnative (BoringSSL) is not available", OpenSsl.unavailabilityCause());
        }
        SslContext context = SslContextBuilder.forClient()
                .sslProvider(SslProvider.OPENSSL)
                .keyManager(new OpenSslCachingX509KeyManagerFactory(
                        new KeyManagerFactoryWrapper(new AlwaysPresent(privateKey(key), certificates(cert)))))
                .trustManager(new VerifiedOnce(trustManager(ca)))
                .endpointIdentificationAlgorithm("HTTPS")
                .protocols("TLSv1.3", "TLSv1.2")
                // What Chrome, Go and OpenSSL 3.5 offer: hybrid post-quantum first, with a second key share for
                // X25519, so a server without ML-KEM (OpenSSL 3.0) answers X25519 without a retry. Each server's
                // own list decides; the report's TLS column shows what each one picked.
                .option(OpenSslContextOption.GROUPS, new String[] {"X25519MLKEM768", "X25519", "P-256", "P-384"})
                .build();
        // Without resumption the client keeps no sessions, so it offers none (neither a session ID nor a TLS 1.3
        // ticket), whatever the server would accept.
        ((OpenSslSessionContext) context.sessionContext()).setSessionCacheEnabled(resume);
        return context;
    }

    /** Whether the handshake just completed resumed a session rather than running in full. */
    static boolean resumed(SSLEngine engine) {
        try {
            return SSL.isSessionReused(((ReferenceCountedOpenSslEngine) engine).sslPointer());
        } catch (Exception e) {   // ClassCastException included: not a BoringSSL engine
            return false;
        }
    }

    /** The key exchange group a handshake settled on, e.g. X25519. */
    static String group(SSLEngine engine) {
        try {
            return SSL.getGroupName(((ReferenceCountedOpenSslEngine) engine).sslPointer());
        } catch (Exception e) {   // ClassCastException included: not a BoringSSL engine
            return "?";
        }
    }

    static String engine() {
        return OpenSsl.isAvailable() ? OpenSsl.versionString() : "unavailable";
    }

    private static X509ExtendedTrustManager trustManager(Path caFile) throws GeneralSecurityException, IOException {
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        int i = 0;
        for (X509Certificate ca : certificates(caFile)) {
            store.setCertificateEntry("ca" + i++, ca);
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init(store);
        for (TrustManager tm : factory.getTrustManagers()) {
            if (tm instanceof X509ExtendedTrustManager x509) {
                return x509;
            }
        }
        throw new IllegalStateException("no X509ExtendedTrustManager");
    }

    private static List<X509Certificate> certificates(Path file) throws CertificateException, IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return CertificateFactory.getInstance("X.509").generateCertificates(in).stream()
                    .map(X509Certificate.class::cast).toList();
        }
    }

    /** An unencrypted PKCS#8 PEM key ("BEGIN PRIVATE KEY"), EC or RSA. */
    private static PrivateKey privateKey(Path file) throws GeneralSecurityException, IOException {
        String pem = Files.readString(file);
        int begin = pem.indexOf("-----BEGIN PRIVATE KEY-----");
        int end = pem.indexOf("-----END PRIVATE KEY-----");
        if (begin < 0 || end < begin) {
            throw new IllegalArgumentException(file + ": expected an unencrypted PKCS#8 key");
        }
        byte[] der = Base64.getMimeDecoder().decode(pem.substring(begin + 27, end));
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(der);
        try {
            return KeyFactory.getInstance("EC").generatePrivate(spec);
        } catch (GeneralSecurityException e) {
            return KeyFactory.getInstance("RSA").generatePrivate(spec);
        }
    }

    /**
     * Presents its one certificate whatever the server asks for. The JDK's key managers choose a certificate by the
     * CA names in the server's certificate request and send none when nothing matches: the "untrusted CA" client
     * would then be a "no certificate" client. This one sends its certificate, as a misconfigured or hostile
     * client does, so that the server has to validate it and refuse it.
     */
    private static final class AlwaysPresent extends X509ExtendedKeyManager {
        private static final String ALIAS = "client";
        private final PrivateKey key;
        private final X509Certificate[] chain;

        AlwaysPresent(PrivateKey key, List<X509Certificate> chain) {
            this.key = key;
            this.chain = chain.toArray(new X509Certificate[0]);
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return ALIAS;
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return ALIAS;
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return new String[] {ALIAS};
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return ALIAS.equals(alias) ? chain.clone() : null;
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return ALIAS.equals(alias) ? key : null;
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return null;
        }
    }

    /**
     * Validates a server chain fully (PKIX against the CA, and the host name) the first time it is seen, then accepts
     * that exact chain, byte for byte, without validating it again. Any other chain gets the full validation. Every
     * connection of a run goes to the same host name, so the host name check of the first validation holds for all.
     */
    private static final class VerifiedOnce extends X509ExtendedTrustManager {
        private final X509ExtendedTrustManager delegate;
        private volatile byte[][] verified;

        VerifiedOnce(X509ExtendedTrustManager delegate) {
            this.delegate = delegate;
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            byte[][] encoded = encode(chain);
            if (!Arrays.deepEquals(encoded, verified)) {
                delegate.checkServerTrusted(chain, authType, engine);
                verified = encoded;
            }
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            delegate.checkServerTrusted(chain, authType, socket);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            // Netty's engine always calls the SSLEngine variant; this one is never memoised.
            delegate.checkServerTrusted(chain, authType);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            throw new CertificateException("a client context does not verify clients");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            throw new CertificateException("a client context does not verify clients");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            throw new CertificateException("a client context does not verify clients");
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return delegate.getAcceptedIssuers();
        }

        private static byte[][] encode(X509Certificate[] chain) throws CertificateException {
            byte[][] out = new byte[chain.length][];
            for (int i = 0; i < chain.length; i++) {
                out[i] = chain[i].getEncoded();
            }
            return out;
        }
    }
}
