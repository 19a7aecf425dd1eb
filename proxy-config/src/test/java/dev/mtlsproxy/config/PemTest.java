package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.netty.pkitesting.CertificateBuilder.Algorithm;
import io.netty.pkitesting.X509Bundle;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class PemTest {

    @TempDir
    Path dir;

    final X509Bundle ca = TestPki.ca("pem-ca");

    @Test
    void readsAChainLeafFirst() throws Exception {
        X509Bundle leaf = TestPki.leaf(ca, "leaf.local");
        Path file = TestPki.write(dir.resolve("chain.pem"), leaf.getCertificatePathPEM() + ca.getCertificatePEM());

        List<X509Certificate> chain = Pem.readCertificates(file);

        assertThat(chain).containsExactly(leaf.getCertificate(), ca.getCertificate());
    }

    @Test
    void ignoresOtherBlocksAndTextAroundCertificates() throws Exception {
        X509Bundle leaf = TestPki.leaf(ca, "leaf.local");
        Path file = TestPki.write(dir.resolve("combined.pem"),
                "Bag Attributes: from a PKCS#12 export\n" + leaf.getPrivateKeyPEM() + leaf.getCertificatePEM());

        assertThat(Pem.readCertificates(file)).containsExactly(leaf.getCertificate());
    }

    @ParameterizedTest
    @EnumSource(value = Algorithm.class, names = {"ecp256", "rsa2048", "ed25519"})
    void readsPkcs8KeysThatMatchTheirCertificate(Algorithm algorithm) throws Exception {
        X509Bundle leaf = TestPki.leaf(ca, "leaf.local", algorithm);
        Path file = TestPki.write(dir.resolve("leaf.key"), leaf.getPrivateKeyPEM());

        PrivateKey key = Pem.readPrivateKey(file);

        assertThat(key.getEncoded()).isEqualTo(leaf.getKeyPair().getPrivate().getEncoded());
        assertThat(Pem.keyMatchesCertificate(key, leaf.getCertificate())).isTrue();
        assertThat(Pem.keyMatchesCertificate(key, TestPki.leaf(ca, "other", algorithm).getCertificate())).isFalse();
    }

    @Test
    void aKeyOfAnotherTypeNeverMatches() {
        PrivateKey rsa = TestPki.leaf(ca, "rsa", Algorithm.rsa2048).getKeyPair().getPrivate();
        X509Certificate ec = TestPki.leaf(ca, "ec").getCertificate();

        assertThat(Pem.keyMatchesCertificate(rsa, ec)).isFalse();
    }

    @Test
    void rejectsPkcs1WithTheCommandThatConvertsIt() {
        // a real PKCS#1 key: PKCS#8 of RSA is a fixed 26-byte header around it
        byte[] pkcs8 = TestPki.leaf(ca, "rsa", Algorithm.rsa2048).getKeyPair().getPrivate().getEncoded();
        byte[] pkcs1 = Arrays.copyOfRange(pkcs8, 26, pkcs8.length);
        Path file = TestPki.write(dir.resolve("rsa.key"), TestPki.pem("RSA PRIVATE KEY", pkcs1));

        PemException e = catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(file));

        assertThat(e.reason())
                .isEqualTo("PKCS#1/SEC1 key; convert with: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8");
        assertThat(e.getMessage()).isEqualTo(file + ": " + e.reason());
        assertThat(e.file()).isEqualTo(file);
    }

    @Test
    void rejectsSec1WithTheSameAdvice() {
        Path file = TestPki.write(dir.resolve("ec.key"), TestPki.pem("EC PRIVATE KEY", new byte[] {48, 1, 2}));

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(file)).reason())
                .isEqualTo("PKCS#1/SEC1 key; convert with: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8");
    }

    @Test
    void rejectsEncryptedKeysSayingWhy() {
        Path file = TestPki.write(dir.resolve("enc.key"), TestPki.pem("ENCRYPTED PRIVATE KEY", new byte[] {48, 0}));

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(file)).reason())
                .isEqualTo("encrypted key; the proxy cannot prompt for a passphrase,"
                        + " decrypt with: openssl pkey -in KEY -out KEY.pk8");
    }

    @Test
    void rejectsOtherKeyFormats() {
        Path file = TestPki.write(dir.resolve("ssh.key"), TestPki.pem("OPENSSH PRIVATE KEY", new byte[] {1}));

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(file)).reason())
                .isEqualTo("unsupported key format BEGIN OPENSSH PRIVATE KEY");
    }

    @Test
    void rejectsAPkcs8KeyOfAnUnsupportedAlgorithm() throws Exception {
        byte[] dsa = KeyPairGenerator.getInstance("DSA").generateKeyPair().getPrivate().getEncoded();
        Path file = TestPki.write(dir.resolve("dsa.key"), TestPki.pem("PRIVATE KEY", dsa));

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(file)).reason())
                .isEqualTo("not an RSA, EC or Ed25519 PKCS#8 key");
    }

    @Test
    void saysWhatAFileHasWhenItLacksWhatWasAskedFor() {
        X509Bundle leaf = TestPki.leaf(ca, "leaf.local");
        Path keyOnly = TestPki.write(dir.resolve("key.pem"), leaf.getPrivateKeyPEM());
        Path certOnly = TestPki.write(dir.resolve("cert.pem"), leaf.getCertificatePEM());
        Path empty = TestPki.write(dir.resolve("empty.pem"), "");

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readCertificates(keyOnly)).reason())
                .isEqualTo("no CERTIFICATE block found (found: PRIVATE KEY)");
        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(certOnly)).reason())
                .isEqualTo("no PRIVATE KEY block found (found: CERTIFICATE)");
        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readCertificates(empty)).reason())
                .isEqualTo("no CERTIFICATE block found");
    }

    @Test
    void reportsBrokenBlocksByNumberWithoutTheirContent() {
        String good = TestPki.leaf(ca, "leaf.local").getCertificatePEM();
        Path badBase64 = TestPki.write(dir.resolve("b64.pem"), good + "-----BEGIN CERTIFICATE-----\n!!!!\n"
                + "-----END CERTIFICATE-----\n");
        Path notACertificate = TestPki.write(dir.resolve("junk.pem"), TestPki.pem("CERTIFICATE", new byte[] {1, 2}));
        Path badKey = TestPki.write(dir.resolve("bad.key"), "-----BEGIN PRIVATE KEY-----\nMIGH*\n"
                + "-----END PRIVATE KEY-----\n");

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readCertificates(badBase64)).reason())
                .isEqualTo("CERTIFICATE block 2 is not valid base64");
        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readCertificates(notACertificate)).reason())
                .isEqualTo("CERTIFICATE block 1 is not a valid X.509 certificate");
        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(badKey)).reason())
                .isEqualTo("PRIVATE KEY block is not valid base64");
    }

    @Test
    void unreadableFilesSayWhy() {
        Path missing = dir.resolve("missing.pem");

        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readCertificates(missing)).reason())
                .isEqualTo("no such file");
        assertThat(catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(dir)).reason())
                .isEqualTo("is a directory");
    }

    @Test
    void noMessageEverContainsKeyMaterial() {
        byte[] pkcs8 = TestPki.leaf(ca, "rsa", Algorithm.rsa2048).getKeyPair().getPrivate().getEncoded();
        byte[] truncated = Arrays.copyOf(pkcs8, pkcs8.length / 2);
        Path file = TestPki.write(dir.resolve("truncated.key"), TestPki.pem("PRIVATE KEY", truncated));
        String base64 = Base64.getEncoder().encodeToString(truncated);

        PemException e = catchThrowableOfType(PemException.class, () -> Pem.readPrivateKey(file));

        assertThat(e.getMessage()).isEqualTo(file + ": not an RSA, EC or Ed25519 PKCS#8 key");
        assertThat(e.getMessage()).doesNotContain(base64.substring(40, 60));
        assertThat(e.getCause()).isNull();
    }
}
