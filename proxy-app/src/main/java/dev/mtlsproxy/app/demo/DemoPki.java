package dev.mtlsproxy.app.demo;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.InvalidKeyException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.SignatureException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.Date;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * The throwaway PKI behind {@code mtls-proxy demo}: a CA, a server certificate for {@code localhost}
 * and two client certificates, one the demo configuration allows ({@code spiffe://demo.local/orders})
 * and one it denies ({@code spiffe://demo.local/intruder}), written as PEM files into one directory.
 *
 * <p>{@link #ensure} creates once: a complete, consistent set that stays valid for at least another
 * day is reused, anything else (a missing, unparsable, foreign-CA, mismatched or nearly expired file)
 * causes the whole set, CA included, to be minted again. The CA's private key is never written: once
 * the leaves are signed nothing can issue under this CA, so a leaked demo directory cannot be used to
 * mint more identities.
 *
 * <p>Keys are ECDSA P-256 from the JDK's own provider; BouncyCastle only builds the certificates and
 * is never registered as a global JCA provider. Each file is written to a temporary file and moved
 * into place, and private keys are created owner-only (0600) from the start where the file system
 * supports POSIX permissions. Nothing here logs or prints key material.
 */
public final class DemoPki {

    static final Duration VALIDITY = Duration.ofDays(30);
    /** Tolerates a client whose clock is a little behind ours. */
    static final Duration BACKDATE = Duration.ofMinutes(5);
    /** Reuse only certificates that will not expire during a demo started now. */
    static final Duration MIN_REMAINING = Duration.ofDays(1);

    static final X500Principal CA_SUBJECT =
            new X500Principal("CN=mtls-proxy demo CA (NOT FOR PRODUCTION),O=mtls-proxy demo");
    static final X500Principal SERVER_SUBJECT = new X500Principal("CN=localhost");
    static final X500Principal ALLOWED_CLIENT_SUBJECT = new X500Principal("CN=orders,O=mtls-proxy demo");
    static final X500Principal DENIED_CLIENT_SUBJECT = new X500Principal("CN=intruder,O=mtls-proxy demo");
    static final String ALLOWED_CLIENT_SPIFFE_ID = "spiffe://demo.local/orders";
    static final String DENIED_CLIENT_SPIFFE_ID = "spiffe://demo.local/intruder";

    private static final String KEY_ALGORITHM = "EC";
    private static final String CURVE = "secp256r1";
    private static final String SIGNATURE_ALGORITHM = "SHA256withECDSA";

    private static final Set<PosixFilePermission> OWNER_READ_WRITE = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> WORLD_READABLE = PosixFilePermissions.fromString("rw-r--r--");
    private static final Set<PosixFilePermission> OWNER_ONLY_DIRECTORY = PosixFilePermissions.fromString("rwx------");

    private final Path dir;
    private final boolean created;

    private DemoPki(Path dir, boolean created) {
        this.dir = dir;
        this.created = created;
    }

    /**
     * Returns the PKI in {@code dir}, minting it first unless a valid one is already there.
     *
     * @param clock the time certificates are checked against and issued from
     */
    public static DemoPki ensure(Path dir, Clock clock) throws IOException, GeneralSecurityException {
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(clock, "clock");
        Instant now = clock.instant();
        DemoPki existing = new DemoPki(dir, false);
        if (existing.isReusableAt(now)) {
            return existing;
        }
        mint(dir, now);
        return new DemoPki(dir, true);
    }

    /** {@code dir/ca.pem}: the CA certificate both sides trust. */
    public Path caCertificate() {
        return dir.resolve("ca.pem");
    }

    /** {@code dir/server.pem}: the server leaf alone, issued by the CA. */
    public Path serverCertificate() {
        return dir.resolve("server.pem");
    }

    /** {@code dir/server.key}: PKCS#8, owner-only. */
    public Path serverKey() {
        return dir.resolve("server.key");
    }

    /** {@code dir/client-allowed.pem}: identity {@value #ALLOWED_CLIENT_SPIFFE_ID}. */
    public Path allowedClientCertificate() {
        return dir.resolve("client-allowed.pem");
    }

    /** {@code dir/client-allowed.key}: PKCS#8, owner-only. */
    public Path allowedClientKey() {
        return dir.resolve("client-allowed.key");
    }

    /** {@code dir/client-denied.pem}: identity {@value #DENIED_CLIENT_SPIFFE_ID}. */
    public Path deniedClientCertificate() {
        return dir.resolve("client-denied.pem");
    }

    /** {@code dir/client-denied.key}: PKCS#8, owner-only. */
    public Path deniedClientKey() {
        return dir.resolve("client-denied.key");
    }

    /** True when this {@link #ensure} call minted new files, false when it reused valid ones. */
    public boolean created() {
        return created;
    }

    // ---- reuse check ---------------------------------------------------------------------------

    private boolean isReusableAt(Instant now) throws GeneralSecurityException {
        try {
            X509Certificate ca = readCertificate(caCertificate());
            // Self-signed by the CA key and still a CA: anything else is not our demo CA.
            ca.verify(ca.getPublicKey());
            if (ca.getBasicConstraints() < 0 || !stillValid(ca, now)) {
                return false;
            }
            return isIssuedLeaf(ca, serverCertificate(), serverKey(), now)
                    && isIssuedLeaf(ca, allowedClientCertificate(), allowedClientKey(), now)
                    && isIssuedLeaf(ca, deniedClientCertificate(), deniedClientKey(), now);
        } catch (IOException | CertificateException | InvalidKeySpecException | InvalidKeyException
                | SignatureException e) {
            // Missing, unreadable, malformed, expired or signed by another key: mint a fresh set.
            return false;
        }
    }

    private static boolean isIssuedLeaf(X509Certificate ca, Path certificateFile, Path keyFile, Instant now)
            throws IOException, GeneralSecurityException {
        X509Certificate leaf = readCertificate(certificateFile);
        leaf.verify(ca.getPublicKey());
        return leaf.getIssuerX500Principal().equals(ca.getSubjectX500Principal())
                && stillValid(leaf, now)
                && keyMatches(readPrivateKey(keyFile), leaf);
    }

    private static boolean stillValid(X509Certificate certificate, Instant now) {
        Date notBefore = certificate.getNotBefore();
        Date notAfter = certificate.getNotAfter();
        return !notBefore.toInstant().isAfter(now) && !notAfter.toInstant().isBefore(now.plus(MIN_REMAINING));
    }

    /** A key file left over from another set would make the TLS handshake fail with a confusing error. */
    private static boolean keyMatches(PrivateKey key, X509Certificate certificate) throws GeneralSecurityException {
        byte[] challenge = new byte[32];
        new SecureRandom().nextBytes(challenge);
        Signature signer = Signature.getInstance(SIGNATURE_ALGORITHM);
        signer.initSign(key);
        signer.update(challenge);
        byte[] signature = signer.sign();
        Signature verifier = Signature.getInstance(SIGNATURE_ALGORITHM);
        verifier.initVerify(certificate.getPublicKey());
        verifier.update(challenge);
        return verifier.verify(signature);
    }

    private static X509Certificate readCertificate(Path file) throws IOException, CertificateException {
        byte[] der = Pem.decodeOne(Files.readString(file, StandardCharsets.US_ASCII), Pem.CERTIFICATE);
        return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(der));
    }

    private static PrivateKey readPrivateKey(Path file) throws IOException, GeneralSecurityException {
        byte[] der = Pem.decodeOne(Files.readString(file, StandardCharsets.US_ASCII), Pem.PRIVATE_KEY);
        try {
            return KeyFactory.getInstance(KEY_ALGORITHM).generatePrivate(new PKCS8EncodedKeySpec(der));
        } finally {
            Arrays.fill(der, (byte) 0);
        }
    }

    // ---- minting -------------------------------------------------------------------------------

    private static void mint(Path dir, Instant now) throws IOException, GeneralSecurityException {
        SecureRandom random = new SecureRandom();
        Date notBefore = Date.from(now.minus(BACKDATE));
        Date notAfter = Date.from(now.plus(VALIDITY));
        JcaX509ExtensionUtils extensionUtils = new JcaX509ExtensionUtils();

        KeyPair caKeys = newKeyPair(random);
        X509v3CertificateBuilder caBuilder = new JcaX509v3CertificateBuilder(
                CA_SUBJECT, serial(random), notBefore, notAfter, CA_SUBJECT, caKeys.getPublic())
                .addExtension(Extension.basicConstraints, true, new BasicConstraints(0))
                .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
                .addExtension(Extension.subjectKeyIdentifier, false,
                        extensionUtils.createSubjectKeyIdentifier(caKeys.getPublic()));
        Issuer issuer = new Issuer(
                sign(caBuilder, caKeys.getPrivate()), caKeys.getPrivate(), notBefore, notAfter, random, extensionUtils);

        KeyPair serverKeys = newKeyPair(random);
        X509Certificate server = issuer.issue(serverKeys, SERVER_SUBJECT, KeyPurposeId.id_kp_serverAuth,
                new GeneralName(GeneralName.dNSName, "localhost"),
                new GeneralName(GeneralName.iPAddress, "127.0.0.1"));
        KeyPair allowedKeys = newKeyPair(random);
        X509Certificate allowed = issuer.issue(allowedKeys, ALLOWED_CLIENT_SUBJECT, KeyPurposeId.id_kp_clientAuth,
                new GeneralName(GeneralName.uniformResourceIdentifier, ALLOWED_CLIENT_SPIFFE_ID));
        KeyPair deniedKeys = newKeyPair(random);
        X509Certificate denied = issuer.issue(deniedKeys, DENIED_CLIENT_SUBJECT, KeyPurposeId.id_kp_clientAuth,
                new GeneralName(GeneralName.uniformResourceIdentifier, DENIED_CLIENT_SPIFFE_ID));

        boolean posix = dir.getFileSystem().supportedFileAttributeViews().contains("posix");
        if (!Files.isDirectory(dir)) {
            if (posix) {
                Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(OWNER_ONLY_DIRECTORY));
            } else {
                Files.createDirectories(dir);
            }
        }
        DemoPki pki = new DemoPki(dir, true);
        // Each file is replaced atomically; a run interrupted half way leaves a mixed set, which the
        // reuse check rejects (leaves no longer chain to ca.pem), so the next run mints again.
        writeKey(pki.serverKey(), serverKeys.getPrivate(), posix);
        writeCertificate(pki.serverCertificate(), server, posix);
        writeKey(pki.allowedClientKey(), allowedKeys.getPrivate(), posix);
        writeCertificate(pki.allowedClientCertificate(), allowed, posix);
        writeKey(pki.deniedClientKey(), deniedKeys.getPrivate(), posix);
        writeCertificate(pki.deniedClientCertificate(), denied, posix);
        writeCertificate(pki.caCertificate(), issuer.certificate(), posix);
    }

    /** The CA while it mints; its private key lives only as long as this object. */
    private record Issuer(
            X509Certificate certificate,
            PrivateKey key,
            Date notBefore,
            Date notAfter,
            SecureRandom random,
            JcaX509ExtensionUtils extensionUtils) {

        X509Certificate issue(KeyPair subjectKeys, X500Principal subject, KeyPurposeId purpose,
                GeneralName... subjectAlternativeNames) throws IOException, GeneralSecurityException {
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(
                    certificate, serial(random), notBefore, notAfter, subject, subjectKeys.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(false))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature))
                    .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(purpose))
                    // Not critical: every leaf also has a non-empty subject (RFC 5280 4.2.1.6).
                    .addExtension(Extension.subjectAlternativeName, false,
                            new GeneralNames(subjectAlternativeNames))
                    .addExtension(Extension.subjectKeyIdentifier, false,
                            extensionUtils.createSubjectKeyIdentifier(subjectKeys.getPublic()))
                    // OpenSSL 3 in strict mode (Python's ssl default, for one) rejects leaves without an AKI.
                    // Key id only, equal to the CA's SKI.
                    .addExtension(Extension.authorityKeyIdentifier, false,
                            extensionUtils.createAuthorityKeyIdentifier(certificate.getPublicKey()));
            return sign(builder, key);
        }

        /** Overridden so the generated form cannot print the CA's private key. */
        @Override
        public String toString() {
            return "Issuer[" + certificate.getSubjectX500Principal() + "]";
        }
    }

    private static X509Certificate sign(X509v3CertificateBuilder builder, PrivateKey issuerKey)
            throws GeneralSecurityException {
        ContentSigner signer;
        try {
            // No provider named: the JDK's SunEC signs, BouncyCastle stays out of the JCA.
            signer = new JcaContentSignerBuilder(SIGNATURE_ALGORITHM).build(issuerKey);
        } catch (OperatorCreationException e) {
            throw new GeneralSecurityException("cannot create a " + SIGNATURE_ALGORITHM + " signer", e);
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(signer));
    }

    private static KeyPair newKeyPair(SecureRandom random) throws GeneralSecurityException {
        KeyPairGenerator generator = KeyPairGenerator.getInstance(KEY_ALGORITHM);
        generator.initialize(new ECGenParameterSpec(CURVE), random);
        return generator.generateKeyPair();
    }

    /** 128 random bits, positive as RFC 5280 requires (zero is not). */
    private static BigInteger serial(SecureRandom random) {
        BigInteger serial;
        do {
            serial = new BigInteger(128, random);
        } while (serial.signum() == 0);
        return serial;
    }

    // ---- files ---------------------------------------------------------------------------------

    private static void writeCertificate(Path target, X509Certificate certificate, boolean posix)
            throws IOException, CertificateException {
        byte[] pem = Pem.encode(Pem.CERTIFICATE, certificate.getEncoded()).getBytes(StandardCharsets.US_ASCII);
        writeAtomically(target, pem, posix ? WORLD_READABLE : null);
    }

    private static void writeKey(Path target, PrivateKey key, boolean posix) throws IOException {
        // The JDK encodes private keys as PKCS#8 PrivateKeyInfo, the "BEGIN PRIVATE KEY" form.
        byte[] der = key.getEncoded();
        byte[] pem = Pem.encode(Pem.PRIVATE_KEY, der).getBytes(StandardCharsets.US_ASCII);
        try {
            writeAtomically(target, pem, posix ? OWNER_READ_WRITE : null);
        } finally {
            Arrays.fill(der, (byte) 0);
            Arrays.fill(pem, (byte) 0);
        }
    }

    /**
     * Writes into a temporary file in the same directory, created owner-only so a key is never
     * readable by others even for a moment (certificates are widened afterwards), then renames it
     * over {@code target}.
     */
    private static void writeAtomically(Path target, byte[] content, Set<PosixFilePermission> permissions)
            throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        String prefix = "." + target.getFileName() + ".";
        Path temp = permissions == null
                ? Files.createTempFile(dir, prefix, ".tmp")
                : Files.createTempFile(dir, prefix, ".tmp", PosixFilePermissions.asFileAttribute(OWNER_READ_WRITE));
        try {
            Files.write(temp, content);
            if (permissions != null) {
                Files.setPosixFilePermissions(temp, permissions);
            }
            try {
                Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(temp);
        }
    }

    @Override
    public String toString() {
        return "DemoPki[dir=" + dir + ", created=" + created + "]";
    }

    /** Every file this PKI consists of, certificates first. */
    List<Path> files() {
        return List.of(caCertificate(), serverCertificate(), allowedClientCertificate(), deniedClientCertificate(),
                serverKey(), allowedClientKey(), deniedClientKey());
    }
}
