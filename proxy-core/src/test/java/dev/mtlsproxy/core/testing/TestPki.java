package dev.mtlsproxy.core.testing;

import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.Base64;
import java.util.Date;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.DERIA5String;
import org.bouncycastle.asn1.x509.CRLReason;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.GeneralSubtree;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.NameConstraints;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.cert.X509CRLHolder;
import org.bouncycastle.cert.X509v2CRLBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import java.time.Duration;
import java.time.Instant;
import java.util.function.UnaryOperator;
import javax.security.auth.x500.X500Principal;

/**
 * A PKI minted for one test run: a root CA, a server certificate for localhost, and client certificates of every
 * kind a test needs (valid, expired, not yet valid, wrong EKU, from another root, via an intermediate). Nothing is
 * checked in, nothing outlives the run.
 */
public final class TestPki {

    public static final String SERVER_SPIFFE_ID = "spiffe://proxy.test/mtls-proxy";
    /** The trust anchor name under which {@link RunningProxy} trusts this PKI's CA. */
    public static final String ANCHOR = "test-ca";

    private final Path dir;
    private final X509Bundle root;
    private final X509Bundle server;

    private TestPki(Path dir, X509Bundle root, X509Bundle server) {
        this.dir = dir;
        this.root = root;
        this.server = server;
    }

    public static TestPki create(Path dir) {
        try {
            X509Bundle root = newRoot("test root CA");
            X509Bundle server = serverCertificate(root);
            TestPki pki = new TestPki(dir, root, server);
            pki.write("ca.pem", root.getCertificatePEM());
            pki.write("server.pem", server.getCertificatePEM());
            pki.write("server.key", server.getPrivateKeyPEM());
            return pki;
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint test PKI", e);
        }
    }

    public Path caPem() {
        return dir.resolve("ca.pem");
    }

    public Path serverCertificatePem() {
        return dir.resolve("server.pem");
    }

    public Path serverKeyPem() {
        return dir.resolve("server.key");
    }

    public X509Bundle root() {
        return root;
    }

    /** A valid client certificate with the given SPIFFE ID and the clientAuth EKU. */
    public X509Bundle client(String spiffeId) {
        return client(spiffeId, UnaryOperator.identity());
    }

    /** A client certificate issued by this root; {@code customise} adjusts validity, EKU, names. */
    public X509Bundle client(String spiffeId, UnaryOperator<CertificateBuilder> customise) {
        return issue(root, spiffeId, customise);
    }

    public X509Bundle expiredClient(String spiffeId) {
        Instant now = Instant.now();
        return client(spiffeId, b -> b.notBefore(now.minus(Duration.ofDays(2))).notAfter(now.minus(Duration.ofDays(1))));
    }

    public X509Bundle notYetValidClient(String spiffeId) {
        Instant now = Instant.now();
        return client(spiffeId, b -> b.notBefore(now.plus(Duration.ofDays(1))).notAfter(now.plus(Duration.ofDays(2))));
    }

    /** Valid in every way but its EKU, which allows server authentication only. */
    public X509Bundle serverOnlyEkuClient(String spiffeId) {
        return issue(root, spiffeId, b -> b, false);
    }

    /** A certificate with the same name as a real workload, minted by a root nobody trusts. */
    public static X509Bundle clientOfAnotherRoot(String spiffeId) {
        try {
            X509Bundle otherRoot = new CertificateBuilder()
                    .subject("CN=rogue root CA")
                    .setIsCertificateAuthority(true)
                    .ecp256()
                    .buildSelfSigned();
            return issue(otherRoot, spiffeId, b -> b);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** A client certificate issued by any CA, e.g. one from {@link #newRoot}. */
    public static X509Bundle issue(X509Bundle issuer, String spiffeId, UnaryOperator<CertificateBuilder> customise) {
        return issue(issuer, spiffeId, customise, true);
    }

    private static X509Bundle issue(X509Bundle issuer, String spiffeId, UnaryOperator<CertificateBuilder> customise,
            boolean clientAuth) {
        try {
            Instant now = Instant.now();
            String workload = spiffeId.substring(spiffeId.lastIndexOf('/') + 1);
            CertificateBuilder b = new CertificateBuilder()
                    .subject("CN=" + workload + ",O=mtls-proxy tests")
                    .addSanUriName(spiffeId)
                    .notBefore(now.minus(Duration.ofHours(1)))
                    .notAfter(now.plus(Duration.ofHours(12)))
                    .ecp256();
            b = clientAuth ? b.addExtendedKeyUsageClientAuth() : b.addExtendedKeyUsageServerAuth();
            return customise.apply(b).buildIssuedBy(issuer);
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint client certificate", e);
        }
    }

    /** Adjusts a certificate being built; may throw, as the builder's SAN methods do. */
    @FunctionalInterface
    public interface Customiser {
        CertificateBuilder apply(CertificateBuilder builder) throws Exception;
    }

    /** A certificate and key written as PEM files, with the bundle for building TLS contexts in tests. */
    public record Issued(X509Bundle bundle, Path certificate, Path privateKey) {

        /** A JSSE server context presenting this certificate, for a backend on a plain {@code SSLServerSocket}. */
        public javax.net.ssl.SSLContext serverContext() throws GeneralSecurityException {
            java.security.KeyStore keys = bundle.toKeyStore(new char[0]);
            javax.net.ssl.KeyManagerFactory kmf = javax.net.ssl.KeyManagerFactory.getInstance(
                    javax.net.ssl.KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, new char[0]);
            javax.net.ssl.SSLContext context = javax.net.ssl.SSLContext.getInstance("TLS");
            context.init(kmf.getKeyManagers(), null, null);
            return context;
        }
    }

    /**
     * A backend's server certificate issued by this run's root, for localhost and 127.0.0.1 unless
     * {@code customise} says otherwise, written to {@code name.pem} and {@code name.key}.
     */
    public Issued backendServer(String name, Customiser customise) {
        return backendServerIssuedBy(root, name, customise);
    }

    /** As {@link #backendServer}, issued by any CA, e.g. one from {@link #newRoot} or {@link #intermediate}. */
    public Issued backendServerIssuedBy(X509Bundle issuer, String name, Customiser customise) {
        return issueTo(issuer, name, b -> customise.apply(b
                .subject("CN=" + name + ",O=mtls-proxy test backends")
                .addExtendedKeyUsageServerAuth()));
    }

    /** The same as {@link #backendServer}, issued by another root: nothing configured trusts it. */
    public Issued backendServerOfAnotherRoot(String name) {
        return issueTo(newRoot("rogue backend CA"), name, b -> b
                .subject("CN=" + name + ",O=rogue")
                .addSanDnsName("localhost")
                .addSanIpAddress("127.0.0.1")
                .addExtendedKeyUsageServerAuth());
    }

    /** The proxy's own client certificate for mTLS to backends, issued by this run's root. */
    public Issued proxyClient(String spiffeId) {
        return issueTo(root, "proxy-client", b -> b
                .subject("CN=mtls-proxy,O=mtls-proxy tests")
                .addSanUriName(spiffeId)
                .addExtendedKeyUsageClientAuth());
    }

    /** Writes a CA certificate as a PEM bundle file named {@code name}. */
    public Path writeCa(String name, X509Bundle ca) {
        write(name, ca.getCertificatePEM());
        return dir.resolve(name);
    }

    private Issued issueTo(X509Bundle issuer, String name, Customiser customise) {
        try {
            Instant now = Instant.now();
            X509Bundle bundle = customise.apply(new CertificateBuilder()
                    .notBefore(now.minus(Duration.ofHours(1)))
                    .notAfter(now.plus(Duration.ofHours(12)))
                    .ecp256()).buildIssuedBy(issuer);
            write(name + ".pem", bundle.getCertificatePEM());
            write(name + ".key", bundle.getPrivateKeyPEM());
            return new Issued(bundle, dir.resolve(name + ".pem"), dir.resolve(name + ".key"));
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint " + name, e);
        }
    }

    /**
     * Writes a file of the PKI directory atomically (a temporary file moved over it), as a careful deploy tool or
     * Kubernetes' symlink swap would: a reader sees the old content or the new, never half of it.
     */
    public Path write(String name, String content) {
        try {
            Path target = dir.resolve(name);
            Path tmp = Files.createTempFile(dir, "." + name, ".tmp");
            Files.writeString(tmp, content);
            return Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Path dir() {
        return dir;
    }

    /** A new server certificate for localhost from this root, with a new key; not written anywhere yet. */
    public X509Bundle newServerCertificate() {
        return serverCertificate(root);
    }

    private static X509Bundle serverCertificate(X509Bundle root) {
        try {
            Instant now = Instant.now();
            return new CertificateBuilder()
                    .subject("CN=localhost")
                    .addSanDnsName("localhost")
                    .addSanIpAddress("127.0.0.1")
                    .addSanUriName(SERVER_SPIFFE_ID)
                    .addExtendedKeyUsageServerAuth()
                    .notBefore(now.minus(Duration.ofHours(1)))
                    .notAfter(now.plus(Duration.ofDays(1)))
                    .ecp256()
                    .buildIssuedBy(root);
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint server certificate", e);
        }
    }

    /** Replaces server.pem and server.key with a new certificate and key (key first, as a rotation tool would). */
    public X509Bundle rotateServerCertificate() {
        X509Bundle next = newServerCertificate();
        write("server.key", next.getPrivateKeyPEM());
        write("server.pem", next.getCertificatePEM());
        return next;
    }

    /** A new self-signed CA, trusted by nothing until a test says so: the next root of a rotation, a partner CA. */
    public static X509Bundle newRoot(String commonName) {
        return newRoot(commonName, UnaryOperator.identity());
    }

    /** A new self-signed CA as {@link #newRoot(String)} mints it, then adjusted: other dates, a path length. */
    public static X509Bundle newRoot(String commonName, UnaryOperator<CertificateBuilder> customise) {
        try {
            Instant now = Instant.now();
            // Valid well before any client certificate minted here, expired ones included: a CA's own dates bound
            // every chain below it.
            return customise.apply(new CertificateBuilder()
                    .subject("CN=" + commonName + ",O=mtls-proxy tests")
                    .setIsCertificateAuthority(true)
                    .notBefore(now.minus(Duration.ofDays(7)))
                    .notAfter(now.plus(Duration.ofDays(2)))
                    .ecp256())
                    .buildSelfSigned();
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint root", e);
        }
    }

    /**
     * A self-signed CA whose name constraints permit only URIs whose host is {@code domain}: a partner's CA, allowed
     * to speak for its own SPIFFE trust domain and nothing else.
     */
    public static X509Bundle nameConstrainedRoot(String commonName, String domain) {
        return constrainedRoot(commonName, new GeneralName(GeneralName.uniformResourceIdentifier, domain));
    }

    /**
     * A self-signed CA whose name constraints permit only DNS names in {@code domain} and below: a partner's CA,
     * allowed to issue server certificates for its own hosts and nothing else.
     */
    public static X509Bundle dnsConstrainedRoot(String commonName, String domain) {
        return constrainedRoot(commonName, new GeneralName(GeneralName.dNSName, domain));
    }

    /** A P-256 key pair, for certificates minted with Bouncy Castle where netty-pkitesting cannot say enough. */
    public static KeyPair newP256Key() throws GeneralSecurityException {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        return generator.generateKeyPair();
    }

    /**
     * A client certificate (clientAuth) issued by {@code issuer} whose URI SANs are written as given, unchecked:
     * the Netty builder parses them with java.net.URI first, so it cannot mint one the JDK cannot read.
     */
    public static X509Bundle clientWithRawUris(X509Bundle issuer, String... uris) {
        return clientWithRawSans(issuer, GeneralName.uniformResourceIdentifier, uris);
    }

    /**
     * A client certificate (clientAuth) issued by {@code issuer} whose SANs of one type (BouncyCastle's
     * {@link GeneralName#dNSName}, {@link GeneralName#rfc822Name}, {@link GeneralName#uniformResourceIdentifier}) are
     * written as given, unchecked: each char becomes the octet of its low byte, so a NUL, a quote or a non-ASCII
     * octet lands in the IA5String as it would from a careless CA.
     */
    public static X509Bundle clientWithRawSans(X509Bundle issuer, int nameType, String... values) {
        try {
            Instant now = Instant.now();
            KeyPair keys = newP256Key();
            GeneralName[] names = new GeneralName[values.length];
            for (int i = 0; i < values.length; i++) {
                names[i] = new GeneralName(nameType, new DERIA5String(values[i], false));
            }
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer.getCertificate(),
                    BigInteger.valueOf(System.nanoTime()), Date.from(now.minus(Duration.ofHours(1))),
                    Date.from(now.plus(Duration.ofHours(12))), new X500Principal("CN=orders,O=mtls-proxy tests"),
                    keys.getPublic())
                    .addExtension(Extension.extendedKeyUsage, false,
                            new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth))
                    .addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names));
            X509Certificate certificate = new JcaX509CertificateConverter().getCertificate(builder.build(
                    new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getKeyPair().getPrivate())));
            return X509Bundle.fromCertificatePath(new X509Certificate[] {certificate}, issuer.getCertificate(), keys);
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint client certificate", e);
        }
    }

    private static X509Bundle constrainedRoot(String commonName, GeneralName permittedSubtree) {
        try {
            Instant now = Instant.now();
            KeyPair keys = newP256Key();
            X500Name name = new X500Name("CN=" + commonName + ",O=mtls-proxy tests");
            GeneralSubtree[] permitted = {new GeneralSubtree(permittedSubtree)};
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name,
                    BigInteger.valueOf(now.toEpochMilli()), Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(2))), name,
                    keys.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(true))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
                    .addExtension(Extension.nameConstraints, true, new NameConstraints(permitted, null));
            X509Certificate certificate = new JcaX509CertificateConverter().getCertificate(
                    builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(keys.getPrivate())));
            return X509Bundle.fromRootCertificateAuthority(certificate, keys);
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint name-constrained root", e);
        }
    }

    /**
     * {@code ca} issued again with its own name and key but other dates, as a CA is renewed: both versions verify
     * what that key signed. (The Netty builder cannot reuse a key for a self-signed certificate.)
     */
    public static X509Bundle reissued(X509Bundle ca, Instant notBefore, Instant notAfter) {
        try {
            KeyPair keys = ca.getKeyPair();
            X500Name name = X500Name.getInstance(ca.getCertificate().getSubjectX500Principal().getEncoded());
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name,
                    BigInteger.valueOf(System.nanoTime()), Date.from(notBefore), Date.from(notAfter), name,
                    keys.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(true))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            X509Certificate certificate = new JcaX509CertificateConverter().getCertificate(
                    builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(keys.getPrivate())));
            return X509Bundle.fromRootCertificateAuthority(certificate, keys);
        } catch (Exception e) {
            throw new IllegalStateException("cannot reissue " + ca.getCertificate().getSubjectX500Principal(), e);
        }
    }

    /** A client certificate issued by another CA (for CA rotation tests). */
    public static X509Bundle clientOf(X509Bundle issuer, String spiffeId) {
        return issue(issuer, spiffeId, UnaryOperator.identity());
    }

    /** An intermediate CA below {@code issuer}. */
    public static X509Bundle intermediate(X509Bundle issuer, String commonName) {
        return intermediate(issuer, commonName, UnaryOperator.identity());
    }

    /** An intermediate CA below {@code issuer}, then adjusted: a path length, other dates. */
    public static X509Bundle intermediate(X509Bundle issuer, String commonName,
            UnaryOperator<CertificateBuilder> customise) {
        try {
            Instant now = Instant.now();
            return customise.apply(new CertificateBuilder()
                    .subject("CN=" + commonName + ",O=mtls-proxy tests")
                    .setIsCertificateAuthority(true)
                    .notBefore(now.minus(Duration.ofHours(1)))
                    .notAfter(now.plus(Duration.ofDays(2)))
                    .ecp256())
                    .buildIssuedBy(issuer);
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint intermediate", e);
        }
    }

    /**
     * An intermediate CA below {@code issuer} whose name constraints permit only DNS names in {@code domain} and
     * below: a CA delegated one domain. Unlike a constrained root, the JDK's own path validation applies its
     * constraints, for it is part of the path rather than the anchor.
     */
    public static X509Bundle dnsConstrainedIntermediate(X509Bundle issuer, String commonName, String domain) {
        return constrainedIntermediate(issuer, commonName, new GeneralName(GeneralName.dNSName, domain));
    }

    /**
     * An intermediate CA below {@code issuer} whose name constraints permit only URIs whose host is {@code domain}: a
     * CA delegated one SPIFFE trust domain.
     */
    public static X509Bundle nameConstrainedIntermediate(X509Bundle issuer, String commonName, String domain) {
        return constrainedIntermediate(issuer, commonName,
                new GeneralName(GeneralName.uniformResourceIdentifier, domain));
    }

    /**
     * An intermediate CA below {@code issuer} whose name constraints permit only IP addresses in {@code cidr}, such
     * as {@code 10.0.0.0/8}: a CA delegated one network.
     */
    public static X509Bundle ipConstrainedIntermediate(X509Bundle issuer, String commonName, String cidr) {
        return constrainedIntermediate(issuer, commonName, new GeneralName(GeneralName.iPAddress, cidr));
    }

    /**
     * An intermediate CA below {@code issuer} whose name constraints exclude the IP addresses in {@code cidr}: a CA
     * that may issue for any network but that one.
     */
    public static X509Bundle ipExcludedIntermediate(X509Bundle issuer, String commonName, String cidr) {
        return constrainedIntermediate(issuer, commonName, null,
                new GeneralSubtree(new GeneralName(GeneralName.iPAddress, cidr)));
    }

    private static X509Bundle constrainedIntermediate(X509Bundle issuer, String commonName,
            GeneralName permittedSubtree) {
        return constrainedIntermediate(issuer, commonName, new GeneralSubtree(permittedSubtree), null);
    }

    private static X509Bundle constrainedIntermediate(X509Bundle issuer, String commonName, GeneralSubtree permitted,
            GeneralSubtree excluded) {
        try {
            byte[] constraints = new NameConstraints(permitted == null ? null : new GeneralSubtree[] {permitted},
                    excluded == null ? null : new GeneralSubtree[] {excluded}).getEncoded();
            return intermediate(issuer, commonName, b -> b
                    .addExtensionOctetString(Extension.nameConstraints.getId(), true, constraints));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode name constraints", e);
        }
    }

    /**
     * A CRL signed by {@code issuer}, PEM-encoded, revoking the given certificates.
     *
     * @param thisUpdate when it was issued
     * @param nextUpdate when it goes stale
     */
    public static String crl(X509Bundle issuer, Instant thisUpdate, Instant nextUpdate,
            X509Certificate... revoked) {
        return crl(issuer, thisUpdate, nextUpdate, b -> { }, revoked);
    }

    /** Adds to a CRL being built: extensions, entries; may throw, as the builder's methods do. */
    @FunctionalInterface
    public interface CrlContent {
        void addTo(X509v2CRLBuilder builder) throws Exception;
    }

    /** As {@link #crl(X509Bundle, Instant, Instant, X509Certificate...)}, with what {@code content} adds. */
    public static String crl(X509Bundle issuer, Instant thisUpdate, Instant nextUpdate, CrlContent content,
            X509Certificate... revoked) {
        String algorithm = issuer.getKeyPair().getPrivate().getAlgorithm().equals("EC") ? "SHA256withECDSA"
                : "SHA256withRSA";
        return crl(issuer.getCertificate().getSubjectX500Principal(), issuer.getKeyPair().getPrivate(), algorithm,
                thisUpdate, nextUpdate, content, revoked);
    }

    /**
     * A CRL in {@code issuer}'s name, signed with any key and algorithm (a forgery, SHA-1), PEM-encoded; revoked
     * certificates are listed with reason keyCompromise.
     */
    public static String crl(X500Principal issuer, PrivateKey key, String algorithm, Instant thisUpdate,
            Instant nextUpdate, CrlContent content, X509Certificate... revoked) {
        try {
            X509v2CRLBuilder builder = new X509v2CRLBuilder(X500Name.getInstance(issuer.getEncoded()),
                    Date.from(thisUpdate));
            builder.setNextUpdate(Date.from(nextUpdate));
            for (X509Certificate c : revoked) {
                builder.addCRLEntry(c.getSerialNumber(), Date.from(thisUpdate), CRLReason.keyCompromise);
            }
            content.addTo(builder);
            X509CRLHolder holder = builder.build(new JcaContentSignerBuilder(algorithm).build(key));
            return "-----BEGIN X509 CRL-----\n"
                    + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
                            .encodeToString(holder.getEncoded())
                    + "\n-----END X509 CRL-----\n";
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint CRL", e);
        }
    }

    /** A fresh CRL (valid for a day) from this PKI's root revoking the given certificates. */
    public String rootCrl(X509Certificate... revoked) {
        Instant now = Instant.now();
        return crl(root, now.minus(Duration.ofMinutes(1)), now.plus(Duration.ofDays(1)), revoked);
    }
}
