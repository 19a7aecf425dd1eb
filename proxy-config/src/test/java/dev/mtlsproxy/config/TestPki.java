package dev.mtlsproxy.config;

import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;

/** Certificates minted per test run; nothing here is ever checked in. */
final class TestPki {

    private TestPki() {
    }

    static X509Bundle ca(String cn) {
        try {
            return new CertificateBuilder().subject("CN=" + cn).setIsCertificateAuthority(true).ecp256().buildSelfSigned();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** An intermediate CA below {@code issuer} permitted only DNS names in {@code domain}: a CA delegated one domain. */
    static X509Bundle nameConstrainedIntermediate(X509Bundle issuer, String cn, String domain) {
        try {
            var permitted = new org.bouncycastle.asn1.x509.GeneralSubtree[] {
                    new org.bouncycastle.asn1.x509.GeneralSubtree(new org.bouncycastle.asn1.x509.GeneralName(
                            org.bouncycastle.asn1.x509.GeneralName.dNSName, domain))};
            return new CertificateBuilder().subject("CN=" + cn).setIsCertificateAuthority(true).ecp256()
                    .addExtensionOctetString(org.bouncycastle.asn1.x509.Extension.nameConstraints.getId(), true,
                            new org.bouncycastle.asn1.x509.NameConstraints(permitted, null).getEncoded())
                    .buildIssuedBy(issuer);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Valid from long before any instant a test judges warnings at (a fixed one, where a time-boxed grant must not
     * have lapsed): a leaf minted today would otherwise be warned about as not valid yet at that instant.
     */
    private static final java.time.Instant LEAVES_VALID_FROM = java.time.Instant.parse("2020-01-01T00:00:00Z");

    static X509Bundle leaf(X509Bundle issuer, String cn, CertificateBuilder.Algorithm algorithm) {
        try {
            return new CertificateBuilder().subject("CN=" + cn).addSanDnsName(cn).algorithm(algorithm)
                    .notBefore(LEAVES_VALID_FROM).buildIssuedBy(issuer);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    static X509Bundle leaf(X509Bundle issuer, String cn) {
        return leaf(issuer, cn, CertificateBuilder.Algorithm.ecp256);
    }

    static Path write(Path file, String text) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            return Files.writeString(file, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A CRL from {@code ca}, valid for a day, revoking nothing, PEM-encoded. */
    static String crl(X509Bundle ca) {
        return crl(ca, b -> { });
    }

    /** Adds to a CRL being built: extensions, entries; may throw, as the builder's methods do. */
    @FunctionalInterface
    interface CrlContent {
        void addTo(org.bouncycastle.cert.X509v2CRLBuilder builder) throws Exception;
    }

    /** A CRL from {@code ca}, valid for a day, with what {@code content} adds, PEM-encoded. */
    static String crl(X509Bundle ca, CrlContent content) {
        try {
            java.time.Instant now = java.time.Instant.now();
            var builder = new org.bouncycastle.cert.X509v2CRLBuilder(
                    new org.bouncycastle.cert.jcajce.JcaX509CertificateHolder(ca.getCertificate()).getSubject(),
                    java.util.Date.from(now.minusSeconds(60)));
            builder.setNextUpdate(java.util.Date.from(now.plusSeconds(86_400)));
            content.addTo(builder);
            var signer = new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder(
                    ca.getKeyPair().getPrivate().getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA")
                    .build(ca.getKeyPair().getPrivate());
            return pem("X509 CRL", builder.build(signer).getEncoded());
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint CRL", e);
        }
    }

    static String pem(String label, byte[] der) {
        return "-----BEGIN " + label + "-----\n"
                + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
                + "\n-----END " + label + "-----\n";
    }

    /**
     * Writes two certificates OpenSSL at security level 2 refuses, with their keys, under dir: {@code certs/rsa1024.pem}
     * (CN=rsa1024.local, a 1024-bit RSA key) and {@code certs/sha1.pem} (CN=sha1.local, signed SHA1withECDSA).
     */
    static void writeWeakCertificates(Path dir) {
        try {
            X509Bundle ca = ca("weak-issuer-ca");
            java.security.KeyPairGenerator rsa = java.security.KeyPairGenerator.getInstance("RSA");
            rsa.initialize(1024);
            X509Bundle rsa1024 = new CertificateBuilder().subject("CN=rsa1024.local")
                    .addSanDnsName("rsa1024.local").keyPair(rsa.generateKeyPair()).buildIssuedBy(ca);
            // netty-pkitesting signs no SHA-1: BouncyCastle's builder does, with the CA's key
            java.security.KeyPair sha1Key = java.security.KeyPairGenerator.getInstance("EC").generateKeyPair();
            var sha1 = new org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder(
                    ca.getCertificate().getSubjectX500Principal(), java.math.BigInteger.TEN,
                    java.util.Date.from(java.time.Instant.now().minusSeconds(60)),
                    java.util.Date.from(java.time.Instant.now().plusSeconds(86_400)),
                    new javax.security.auth.x500.X500Principal("CN=sha1.local"), sha1Key.getPublic())
                    .build(new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder("SHA1withECDSA")
                            .build(ca.getKeyPair().getPrivate()));
            write(dir.resolve("certs/rsa1024.pem"), rsa1024.getCertificatePathPEM());
            write(dir.resolve("certs/rsa1024.key"), rsa1024.getPrivateKeyPEM());
            write(dir.resolve("certs/sha1.pem"), pem("CERTIFICATE", sha1.getEncoded()));
            write(dir.resolve("certs/sha1.key"), pem("PRIVATE KEY", sha1Key.getPrivate().getEncoded()));
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint the weak certificates", e);
        }
    }

    /**
     * Writes {@code certs/nul-name.pem} and {@code .key}: a leaf whose dNSName holds a NUL
     * ("server.local\0.evil.test"), written unchecked as a careless CA would.
     */
    static void writeMalformedNameCertificate(Path dir) {
        try {
            X509Bundle ca = ca("careless-ca");
            java.security.KeyPair keys = java.security.KeyPairGenerator.getInstance("EC").generateKeyPair();
            var builder = new org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder(
                    ca.getCertificate().getSubjectX500Principal(), java.math.BigInteger.TWO,
                    java.util.Date.from(LEAVES_VALID_FROM),
                    java.util.Date.from(java.time.Instant.now().plusSeconds(86_400)),
                    new javax.security.auth.x500.X500Principal("CN=nul-name.local"), keys.getPublic())
                    .addExtension(org.bouncycastle.asn1.x509.Extension.subjectAlternativeName, false,
                            new org.bouncycastle.asn1.x509.GeneralNames(new org.bouncycastle.asn1.x509.GeneralName(
                                    org.bouncycastle.asn1.x509.GeneralName.dNSName,
                                    new org.bouncycastle.asn1.DERIA5String("server.local\0.evil.test", false))));
            byte[] der = builder.build(new org.bouncycastle.operator.jcajce.JcaContentSignerBuilder("SHA256withECDSA")
                    .build(ca.getKeyPair().getPrivate())).getEncoded();
            write(dir.resolve("certs/nul-name.pem"), pem("CERTIFICATE", der));
            write(dir.resolve("certs/nul-name.key"), pem("PRIVATE KEY", keys.getPrivate().getEncoded()));
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint the certificate with a malformed name", e);
        }
    }

    /** Writes {@code certs/ca.pem}, {@code certs/server.pem} (chain) and {@code certs/server.key} under dir. */
    static X509Bundle writeServerFiles(Path dir) {
        X509Bundle ca = ca("test-ca");
        X509Bundle server = leaf(ca, "server.local");
        write(dir.resolve("certs/ca.pem"), ca.getCertificatePEM());
        write(dir.resolve("certs/server.pem"), server.getCertificatePathPEM());
        write(dir.resolve("certs/server.key"), server.getPrivateKeyPEM());
        return server;
    }
}
