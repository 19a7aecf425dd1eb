package dev.mtlsproxy.app.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.AlgorithmParameters;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.CertPathValidator;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.ECParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.temporal.ChronoUnit;
import java.util.Base64;
import java.util.Collection;
import java.util.Date;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DemoPkiTest {

    private static final String SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
    private static final String CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
    private static final int SAN_DNS = 2;
    private static final int SAN_URI = 6;
    private static final int SAN_IP = 7;

    private static final Instant NOW = Instant.now().truncatedTo(ChronoUnit.SECONDS);
    private static final Clock CLOCK = Clock.fixed(NOW, ZoneOffset.UTC);

    @TempDir
    Path dir;

    @Test
    void createsAllFilesOnFirstRun() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);

        assertThat(pki.created()).isTrue();
        assertThat(pki.caCertificate()).isEqualTo(dir.resolve("ca.pem"));
        assertThat(pki.serverCertificate()).isEqualTo(dir.resolve("server.pem"));
        assertThat(pki.serverKey()).isEqualTo(dir.resolve("server.key"));
        assertThat(pki.allowedClientCertificate()).isEqualTo(dir.resolve("client-allowed.pem"));
        assertThat(pki.allowedClientKey()).isEqualTo(dir.resolve("client-allowed.key"));
        assertThat(pki.deniedClientCertificate()).isEqualTo(dir.resolve("client-denied.pem"));
        assertThat(pki.deniedClientKey()).isEqualTo(dir.resolve("client-denied.key"));
        assertThat(pki.files()).hasSize(7).allSatisfy(file -> assertThat(file).isRegularFile());
        // Only the seven files: no temporary files left behind, and no CA key written at all.
        try (var listing = Files.list(dir)) {
            assertThat(listing).containsExactlyInAnyOrderElementsOf(pki.files());
        }
    }

    @Test
    void leavesChainToTheCa() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);
        X509Certificate ca = onlyCertificate(pki.caCertificate());

        for (Path leaf : List.of(pki.serverCertificate(), pki.allowedClientCertificate(),
                pki.deniedClientCertificate())) {
            // Each leaf file holds the leaf alone.
            X509Certificate certificate = onlyCertificate(leaf);
            assertThat(certificate.getIssuerX500Principal()).isEqualTo(ca.getSubjectX500Principal());
            validate(certificate, ca, NOW);
        }
    }

    @Test
    void caIsAPathLengthZeroCaForThirtyDays() throws Exception {
        X509Certificate ca = onlyCertificate(DemoPki.ensure(dir, CLOCK).caCertificate());

        assertThat(ca.getSubjectX500Principal().getName())
                .isEqualTo("CN=mtls-proxy demo CA (NOT FOR PRODUCTION),O=mtls-proxy demo");
        assertThat(ca.getBasicConstraints()).isZero();
        assertThat(ca.getCriticalExtensionOIDs()).contains("2.5.29.19", "2.5.29.15");
        // keyUsage bits: 5 keyCertSign, 6 cRLSign, nothing else.
        assertThat(ca.getKeyUsage()).containsExactly(false, false, false, false, false, true, true, false, false);
        assertValidity(ca);
        assertP256Sha256(ca);
    }

    @Test
    void serverCertificateNamesLocalhost() throws Exception {
        X509Certificate server = onlyCertificate(DemoPki.ensure(dir, CLOCK).serverCertificate());

        assertThat(server.getSubjectX500Principal().getName()).isEqualTo("CN=localhost");
        assertThat(server.getSubjectAlternativeNames()).containsExactlyInAnyOrder(
                List.of(SAN_DNS, "localhost"), List.of(SAN_IP, "127.0.0.1"));
        assertThat(server.getExtendedKeyUsage()).containsExactly(SERVER_AUTH);
        assertThat(server.getBasicConstraints()).isEqualTo(-1);
        assertThat(server.getKeyUsage()[0]).as("digitalSignature").isTrue();
        assertThat(server.getCriticalExtensionOIDs()).contains("2.5.29.15");
        assertValidity(server);
        assertP256Sha256(server);
    }

    @Test
    void clientCertificatesCarryTheirSpiffeIds() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);
        X509Certificate allowed = onlyCertificate(pki.allowedClientCertificate());
        X509Certificate denied = onlyCertificate(pki.deniedClientCertificate());

        assertThat(allowed.getSubjectX500Principal().getName()).isEqualTo("CN=orders,O=mtls-proxy demo");
        assertThat(allowed.getSubjectAlternativeNames()).containsExactly(List.of(SAN_URI, "spiffe://demo.local/orders"));
        assertThat(allowed.getExtendedKeyUsage()).containsExactly(CLIENT_AUTH);
        assertThat(denied.getSubjectX500Principal().getName()).isEqualTo("CN=intruder,O=mtls-proxy demo");
        assertThat(denied.getSubjectAlternativeNames())
                .containsExactly(List.of(SAN_URI, "spiffe://demo.local/intruder"));
        assertThat(denied.getExtendedKeyUsage()).containsExactly(CLIENT_AUTH);
        for (X509Certificate client : List.of(allowed, denied)) {
            assertThat(client.getBasicConstraints()).isEqualTo(-1);
            assertValidity(client);
            assertP256Sha256(client);
        }
    }

    @Test
    void serialsAreDistinctPositiveAndAtMost128Bits() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);
        List<BigInteger> serials = List.of(
                onlyCertificate(pki.caCertificate()).getSerialNumber(),
                onlyCertificate(pki.serverCertificate()).getSerialNumber(),
                onlyCertificate(pki.allowedClientCertificate()).getSerialNumber(),
                onlyCertificate(pki.deniedClientCertificate()).getSerialNumber());

        assertThat(serials).doesNotHaveDuplicates().allSatisfy(serial -> {
            assertThat(serial.signum()).isPositive();
            assertThat(serial.bitLength()).isLessThanOrEqualTo(128);
        });
    }

    @Test
    void keysArePkcs8OwnerOnlyAndMatchTheirCertificates() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);

        assertKeyPair(pki.serverKey(), pki.serverCertificate());
        assertKeyPair(pki.allowedClientKey(), pki.allowedClientCertificate());
        assertKeyPair(pki.deniedClientKey(), pki.deniedClientCertificate());
    }

    @Test
    void keyFilesAreMode0600AndCertificatesWorldReadable() throws Exception {
        assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "POSIX file system");
        DemoPki pki = DemoPki.ensure(dir, CLOCK);

        for (Path key : List.of(pki.serverKey(), pki.allowedClientKey(), pki.deniedClientKey())) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(key))).as(key.toString())
                    .isEqualTo("rw-------");
        }
        for (Path certificate : List.of(pki.caCertificate(), pki.serverCertificate(),
                pki.allowedClientCertificate(), pki.deniedClientCertificate())) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(certificate)))
                    .as(certificate.toString()).isEqualTo("rw-r--r--");
        }
    }

    @Test
    void createsAMissingDirectoryOwnerOnly() throws Exception {
        assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "POSIX file system");
        Path nested = dir.resolve("a/demo");

        DemoPki pki = DemoPki.ensure(nested, CLOCK);

        assertThat(pki.created()).isTrue();
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(nested))).isEqualTo("rwx------");
    }

    @Test
    void secondRunReusesTheFiles() throws Exception {
        DemoPki first = DemoPki.ensure(dir, CLOCK);
        BigInteger caSerial = onlyCertificate(first.caCertificate()).getSerialNumber();
        String serverKey = Files.readString(first.serverKey());

        DemoPki second = DemoPki.ensure(dir, Clock.offset(CLOCK, Duration.ofDays(28)));

        assertThat(second.created()).isFalse();
        assertThat(onlyCertificate(second.caCertificate()).getSerialNumber()).isEqualTo(caSerial);
        assertThat(Files.readString(second.serverKey())).isEqualTo(serverKey);
    }

    @Test
    void remintsWhenLessThanADayRemains() throws Exception {
        DemoPki first = DemoPki.ensure(dir, CLOCK);
        BigInteger caSerial = onlyCertificate(first.caCertificate()).getSerialNumber();
        Clock later = Clock.offset(CLOCK, Duration.ofDays(29).plusHours(12));

        DemoPki second = DemoPki.ensure(dir, later);

        assertThat(second.created()).isTrue();
        X509Certificate ca = onlyCertificate(second.caCertificate());
        assertThat(ca.getSerialNumber()).isNotEqualTo(caSerial);
        assertThat(ca.getNotAfter().toInstant()).isEqualTo(later.instant().plus(Duration.ofDays(30)));
        validate(onlyCertificate(second.serverCertificate()), ca, later.instant());
    }

    @Test
    void remintsWhenTheClockIsBeforeTheCertificates() throws Exception {
        DemoPki.ensure(dir, CLOCK);

        assertThat(DemoPki.ensure(dir, Clock.offset(CLOCK, Duration.ofHours(-1))).created()).isTrue();
    }

    @Test
    void remintsWhenAFileIsMissing() throws Exception {
        DemoPki first = DemoPki.ensure(dir, CLOCK);
        Files.delete(first.deniedClientKey());

        DemoPki second = DemoPki.ensure(dir, CLOCK);

        assertThat(second.created()).isTrue();
        assertThat(second.deniedClientKey()).isRegularFile();
    }

    @Test
    void remintsWhenAFileIsCorrupt() throws Exception {
        DemoPki first = DemoPki.ensure(dir, CLOCK);
        Files.writeString(first.serverCertificate(), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");

        assertThat(DemoPki.ensure(dir, CLOCK).created()).isTrue();
        onlyCertificate(first.serverCertificate());
    }

    @Test
    void remintsWhenALeafComesFromAnotherCa() throws Exception {
        Path other = Files.createDirectory(dir.resolve("other"));
        DemoPki foreign = DemoPki.ensure(other, CLOCK);
        DemoPki pki = DemoPki.ensure(dir.resolve("pki"), CLOCK);
        Files.copy(foreign.allowedClientCertificate(), pki.allowedClientCertificate(),
                StandardCopyOption.REPLACE_EXISTING);
        Files.copy(foreign.allowedClientKey(), pki.allowedClientKey(),
                StandardCopyOption.REPLACE_EXISTING);

        DemoPki again = DemoPki.ensure(dir.resolve("pki"), CLOCK);

        assertThat(again.created()).isTrue();
        validate(onlyCertificate(again.allowedClientCertificate()), onlyCertificate(again.caCertificate()), NOW);
    }

    @Test
    void remintsWhenAKeyDoesNotMatchItsCertificate() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);
        // Both files are individually valid; only the pairing is wrong.
        Files.copy(pki.deniedClientKey(), pki.allowedClientKey(), StandardCopyOption.REPLACE_EXISTING);

        assertThat(DemoPki.ensure(dir, CLOCK).created()).isTrue();
        assertKeyPair(pki.allowedClientKey(), pki.allowedClientCertificate());
    }

    /** The files are usable for what the demo does: mutual TLS to localhost with hostname verification. */
    @Test
    void mutualTlsHandshakeWithTheJdk() throws Exception {
        DemoPki pki = DemoPki.ensure(dir, CLOCK);
        SSLContext serverContext = sslContext(pki.serverKey(), pki.serverCertificate(), pki.caCertificate());
        SSLContext clientContext = sslContext(pki.allowedClientKey(), pki.allowedClientCertificate(),
                pki.caCertificate());

        try (SSLServerSocket server = (SSLServerSocket) serverContext.getServerSocketFactory()
                .createServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            server.setNeedClientAuth(true);
            server.setSoTimeout(10_000);
            CompletableFuture<String> peer = CompletableFuture.supplyAsync(() -> {
                try (SSLSocket accepted = (SSLSocket) server.accept()) {
                    accepted.setSoTimeout(10_000);
                    try (InputStream in = accepted.getInputStream(); OutputStream out = accepted.getOutputStream()) {
                        int b = in.read();
                        out.write(b);
                        out.flush();
                    }
                    X509Certificate client = (X509Certificate) accepted.getSession().getPeerCertificates()[0];
                    return client.getSubjectX500Principal().getName();
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });

            try (SSLSocket client = (SSLSocket) clientContext.getSocketFactory()
                    .createSocket("localhost", server.getLocalPort())) {
                client.setSoTimeout(10_000);
                SSLParameters parameters = client.getSSLParameters();
                // Checks the server certificate against the name we dialled.
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
                client.setSSLParameters(parameters);
                client.getOutputStream().write(42);
                client.getOutputStream().flush();
                assertThat(client.getInputStream().read()).isEqualTo(42);
            }
            assertThat(peer.get(10, TimeUnit.SECONDS)).isEqualTo("CN=orders,O=mtls-proxy demo");
        }
    }

    @Test
    void rejectsNullArguments() {
        assertThatThrownBy(() -> DemoPki.ensure(null, CLOCK)).isInstanceOf(NullPointerException.class);
        assertThatThrownBy(() -> DemoPki.ensure(dir, null)).isInstanceOf(NullPointerException.class);
    }

    // ---- helpers -------------------------------------------------------------------------------

    private static X509Certificate onlyCertificate(Path file) throws IOException, GeneralSecurityException {
        Collection<? extends Certificate> certificates;
        try (InputStream in = Files.newInputStream(file)) {
            certificates = CertificateFactory.getInstance("X.509").generateCertificates(in);
        }
        assertThat(certificates).as(file + " holds exactly one certificate").hasSize(1);
        return (X509Certificate) certificates.iterator().next();
    }

    private static void validate(X509Certificate leaf, X509Certificate ca, Instant at) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        PKIXParameters parameters = new PKIXParameters(Set.of(new TrustAnchor(ca, null)));
        parameters.setRevocationEnabled(false);
        parameters.setDate(Date.from(at));
        // Throws CertPathValidatorException when the leaf does not chain to the CA.
        CertPathValidator.getInstance("PKIX").validate(factory.generateCertPath(List.of(leaf)), parameters);
    }

    private static void assertValidity(X509Certificate certificate) {
        assertThat(certificate.getNotBefore().toInstant()).isEqualTo(NOW.minus(Duration.ofMinutes(5)));
        assertThat(certificate.getNotAfter().toInstant()).isEqualTo(NOW.plus(Duration.ofDays(30)));
    }

    private static void assertP256Sha256(X509Certificate certificate) throws GeneralSecurityException {
        assertThat(certificate.getSigAlgName()).isEqualTo("SHA256withECDSA");
        assertThat(certificate.getPublicKey()).isInstanceOf(ECPublicKey.class);
        AlgorithmParameters p256 = AlgorithmParameters.getInstance("EC");
        p256.init(new ECGenParameterSpec("secp256r1"));
        ECParameterSpec expected = p256.getParameterSpec(ECParameterSpec.class);
        ECParameterSpec actual = ((ECPublicKey) certificate.getPublicKey()).getParams();
        assertThat(actual.getCurve()).isEqualTo(expected.getCurve());
        assertThat(actual.getOrder()).isEqualTo(expected.getOrder());
        assertThat(actual.getGenerator()).isEqualTo(expected.getGenerator());
    }

    private static PrivateKey readKey(Path keyFile) throws Exception {
        String pem = Files.readString(keyFile, StandardCharsets.US_ASCII);
        assertThat(pem).startsWith("-----BEGIN PRIVATE KEY-----\n").endsWith("-----END PRIVATE KEY-----\n");
        assertThat(pem.lines().filter(line -> !line.startsWith("-----")))
                .allSatisfy(line -> assertThat(line.length()).isLessThanOrEqualTo(64));
        String base64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        byte[] der = Base64.getDecoder().decode(base64);
        return KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(der));
    }

    private static void assertKeyPair(Path keyFile, Path certificateFile) throws Exception {
        PrivateKey key = readKey(keyFile);
        X509Certificate certificate = onlyCertificate(certificateFile);
        byte[] message = "demo".getBytes(StandardCharsets.US_ASCII);
        Signature signer = Signature.getInstance("SHA256withECDSA");
        signer.initSign(key);
        signer.update(message);
        byte[] signature = signer.sign();
        Signature verifier = Signature.getInstance("SHA256withECDSA");
        verifier.initVerify(certificate.getPublicKey());
        verifier.update(message);
        assertThat(verifier.verify(signature)).as(keyFile + " matches " + certificateFile).isTrue();
    }

    private static SSLContext sslContext(Path keyFile, Path certificateFile, Path caFile) throws Exception {
        char[] password = "unused".toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        keys.load(null, null);
        keys.setKeyEntry("me", readKey(keyFile), password,
                new Certificate[] {onlyCertificate(certificateFile)});
        KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keyManagers.init(keys, password);

        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("ca", onlyCertificate(caFile));
        TrustManagerFactory trustManagers = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trustManagers.init(trust);

        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keyManagers.getKeyManagers(), trustManagers.getTrustManagers(), null);
        return context;
    }
}
