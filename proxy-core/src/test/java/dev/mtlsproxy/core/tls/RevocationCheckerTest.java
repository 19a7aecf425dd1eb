package dev.mtlsproxy.core.tls;

import static dev.mtlsproxy.core.tls.Rejections.rejection;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.mtlsproxy.config.CrlScope;
import dev.mtlsproxy.config.DenyListValues;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.StaleCrlPolicy;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.math.BigInteger;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.CRLNumber;
import org.bouncycastle.asn1.x509.DistributionPointName;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.IssuingDistributionPoint;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** CRLs and the deny-list, judged through the real verifier after real PKIX validation, at a fixed instant. */
class RevocationCheckerTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static Instant now;
    static X509Bundle intermediate;
    static X509Bundle viaIntermediate;
    static X509Bundle direct;

    @BeforeAll
    static void mint() throws Exception {
        pki = TestPki.create(dir);
        now = Instant.now();
        intermediate = TestPki.intermediate(pki.root(), "test intermediate CA");
        viaIntermediate = new CertificateBuilder()
                .subject("CN=orders,O=mtls-proxy tests")
                .addSanUriName(ORDERS)
                .addExtendedKeyUsageClientAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(2)))
                .ecp256()
                .buildIssuedBy(intermediate);
        direct = pki.client(ORDERS);
    }

    private static Path file(String name, String content) throws Exception {
        return Files.writeString(Files.createTempDirectory(dir, "crl").resolve(name), content);
    }

    private static String freshCrl(X509Bundle issuer, X509Certificate... revoked) {
        return TestPki.crl(issuer, now.minus(Duration.ofMinutes(5)), now.plus(Duration.ofHours(1)), revoked);
    }

    /** A verifier trusting the test root as anchor "clients" with these CRL settings, and the deny-list. */
    private static ClientCertificateVerifier verifier(TrustAnchorConfig clients, RevocationConfig denyList,
            List<String> staleSeen) throws Exception {
        Clock clock = Clock.fixed(now, ZoneOffset.UTC);
        RevocationChecker checker = RevocationChecker.load(Map.of("clients", clients), denyList,
                (X500Principal issuer, Instant nextUpdate) -> staleSeen.add(issuer.getName()), clock);
        X509Certificate root = pki.root().getCertificate();
        return new ClientCertificateVerifier(List.of(root), Map.of(root, "clients"), checker, clock);
    }

    private static ClientCertificateVerifier verifier(TrustAnchorConfig clients, List<String> staleSeen)
            throws Exception {
        return verifier(clients, RevocationConfig.NONE, staleSeen);
    }

    private static ClientCertificateVerifier verifier(RevocationConfig denyList, List<String> staleSeen)
            throws Exception {
        return verifier(new TrustAnchorConfig(pki.caPem()), denyList, staleSeen);
    }

    private static TrustAnchorConfig crls(CrlScope scope, StaleCrlPolicy stale, Path... files) {
        return new TrustAnchorConfig(pki.caPem(), List.of(files), scope, stale);
    }

    private static X509Certificate[] chain(X509Bundle... bundles) {
        X509Certificate[] chain = new X509Certificate[bundles.length];
        for (int i = 0; i < bundles.length; i++) {
            chain[i] = bundles[i].getCertificate();
        }
        return chain;
    }

    @Test
    void aCertificateOnItsIssuersCrlIsRevoked() throws Exception {
        Path crl = file("root.crl", freshCrl(pki.root(), direct.getCertificate()));
        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, crl), new ArrayList<>());

        assertThat(rejection(v, chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
        assertThatCode(() -> v.verify(chain(pki.client(ORDERS)))).doesNotThrowAnyException();
    }

    @Test
    void chainScopeNeedsACrlFromEveryCaOfTheChainAndRevokesAnIntermediate() throws Exception {
        Path rootCrl = file("root.crl", freshCrl(pki.root()));
        Path intermediateCrl = file("intermediate.crl", freshCrl(intermediate));

        ClientCertificateVerifier onlyRoot = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, rootCrl),
                new ArrayList<>());
        assertThat(rejection(onlyRoot, chain(viaIntermediate, intermediate)))
                .as("no CRL from the intermediate: fail closed").isEqualTo(HandshakeFailureReason.REVOKED);

        ClientCertificateVerifier both = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, rootCrl,
                intermediateCrl), new ArrayList<>());
        assertThatCode(() -> both.verify(chain(viaIntermediate, intermediate))).doesNotThrowAnyException();

        Path revokesIntermediate = file("root-revoking.crl", freshCrl(pki.root(), intermediate.getCertificate()));
        ClientCertificateVerifier intermediateRevoked = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY,
                revokesIntermediate, intermediateCrl), new ArrayList<>());
        assertThat(rejection(intermediateRevoked, chain(viaIntermediate, intermediate)))
                .isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void leafScopeChecksOnlyTheClientCertificate() throws Exception {
        Path intermediateCrl = file("intermediate.crl", freshCrl(intermediate));
        Path revokesIntermediate = file("root-revoking.crl", freshCrl(pki.root(), intermediate.getCertificate()));

        ClientCertificateVerifier leafOnly = verifier(crls(CrlScope.LEAF, StaleCrlPolicy.DENY, intermediateCrl,
                revokesIntermediate), new ArrayList<>());

        assertThatCode(() -> leafOnly.verify(chain(viaIntermediate, intermediate))).doesNotThrowAnyException();
        Path revokesLeaf = file("intermediate-revoking.crl", freshCrl(intermediate,
                viaIntermediate.getCertificate()));
        assertThat(rejection(verifier(crls(CrlScope.LEAF, StaleCrlPolicy.DENY, revokesLeaf), new ArrayList<>()),
                chain(viaIntermediate, intermediate))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void aCrlWithTheIssuersNameButAnotherKeyIsIgnored() throws Exception {
        // Same subject DN as the real root, different key: its CRL must not count as the root's.
        X509Bundle impostor = new CertificateBuilder()
                .subject(pki.root().getCertificate().getSubjectX500Principal().getName())
                .setIsCertificateAuthority(true)
                .ecp256()
                .buildSelfSigned();
        Path forged = file("forged.crl", freshCrl(impostor));

        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, forged), new ArrayList<>());

        assertThat(rejection(v, chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void aStaleCrlDeniesByDefaultAndIsAcceptedWithANoticeWhenInsecurelyAllowed() throws Exception {
        Path stale = file("stale.crl", TestPki.crl(pki.root(), now.minus(Duration.ofDays(2)),
                now.minus(Duration.ofSeconds(1))));
        List<String> staleSeen = new ArrayList<>();

        assertThat(rejection(verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, stale), staleSeen), chain(direct)))
                .isEqualTo(HandshakeFailureReason.REVOKED);
        assertThat(staleSeen).isEmpty();

        ClientCertificateVerifier allowing = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.INSECURE_ALLOW, stale),
                staleSeen);
        assertThatCode(() -> allowing.verify(chain(direct))).doesNotThrowAnyException();
        assertThat(staleSeen).containsExactly(pki.root().getCertificate().getSubjectX500Principal().getName());
    }

    @Test
    void theNewestValidCrlOfAnIssuerWins() throws Exception {
        Path older = file("older.crl", TestPki.crl(pki.root(), now.minus(Duration.ofHours(2)),
                now.plus(Duration.ofHours(1)), direct.getCertificate()));
        Path newer = file("newer.crl", freshCrl(pki.root()));

        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, older, newer),
                new ArrayList<>());

        assertThatCode(() -> v.verify(chain(direct))).as("unrevoked (certificateHold lifted) in the newer CRL")
                .doesNotThrowAnyException();
    }

    @Test
    void derCrlsAreReadToo() throws Exception {
        String pem = freshCrl(pki.root(), direct.getCertificate());
        byte[] der = Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z0-9 ]+-----", ""));
        Path file = Files.write(Files.createTempDirectory(dir, "der").resolve("root.crl"), der);

        assertThat(rejection(verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, file), new ArrayList<>()),
                chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    // ---------------------------------------------------------------- which CRL counts (RFC 5280 6.3.3, OpenSSL)

    static final String SHARD_1 = "http://crl.test/shard-1.crl";
    static final String SHARD_2 = "http://crl.test/shard-2.crl";

    /** The detail of the refusal, as the handshake log shows it; fails the test when the chain is accepted. */
    private static String refusal(ClientCertificateVerifier verifier, X509Certificate... chain) {
        ClientCertificateRejectedException e = catchThrowableOfType(ClientCertificateRejectedException.class,
                () -> verifier.verify(chain));
        assertThat(e).as("expected a rejection").isNotNull();
        assertThat(e.reason()).isEqualTo(HandshakeFailureReason.REVOKED);
        return e.getMessage();
    }

    private static ClientCertificateVerifier verifierWith(Path... crls) throws Exception {
        return verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, crls), new ArrayList<>());
    }

    /** A CRL of {@code issuer} issued {@code age} ago, fresh for an hour more, with an extension or entries added. */
    private static Path crlFile(String name, X509Bundle issuer, Duration age, TestPki.CrlContent content,
            X509Certificate... revoked) throws Exception {
        return file(name, TestPki.crl(issuer, now.minus(age), now.plus(Duration.ofHours(1)), content, revoked));
    }

    private static TestPki.CrlContent scope(String distributionPoint, boolean onlyUser, boolean onlyCa) {
        DistributionPointName name = distributionPoint == null ? null : new DistributionPointName(new GeneralNames(
                new GeneralName(GeneralName.uniformResourceIdentifier, distributionPoint)));
        return b -> b.addExtension(Extension.issuingDistributionPoint, true,
                new IssuingDistributionPoint(name, onlyUser, onlyCa, null, false, false));
    }

    private static X509Bundle clientAt(String distributionPoint) throws Exception {
        return pki.client(ORDERS, b -> b.addCrlDistributionPoint(URI.create(distributionPoint)));
    }

    @Test
    void aDeltaCrlIsRefusedAtLoadForItListsOnlyTheChangesSinceItsBase() throws Exception {
        // Newer than the base and silent about the client: read as complete, it would unrevoke it.
        Path base = crlFile("base.crl", pki.root(), Duration.ofMinutes(30), b -> { }, direct.getCertificate());
        Path delta = crlFile("delta.crl", pki.root(), Duration.ofMinutes(5), b -> b.addExtension(
                Extension.deltaCRLIndicator, true, new CRLNumber(BigInteger.ONE)));

        PemException e = catchThrowableOfType(PemException.class, () -> verifierWith(base, delta));

        assertThat(e).isNotNull();
        assertThat(e.file()).isEqualTo(delta);
        assertThat(e.reason()).isEqualTo("a delta CRL (deltaCRLIndicator): not supported, give the complete CRL");
    }

    @Test
    void aCrlWithAnUnhandledCriticalExtensionOnItOrOnAnEntryIsRefusedAtLoad() throws Exception {
        ASN1ObjectIdentifier unknown = new ASN1ObjectIdentifier("1.3.6.1.4.1.55555.7.3");
        Path onCrl = crlFile("critical.crl", pki.root(), Duration.ofMinutes(5),
                b -> b.addExtension(unknown, true, DERNull.INSTANCE));
        Path onEntry = crlFile("indirect.crl", pki.root(), Duration.ofMinutes(5),
                b -> b.addCRLEntry(BigInteger.TEN, Date.from(now), new Extensions(new Extension(
                        Extension.certificateIssuer, true, new GeneralNames(new GeneralName(
                                new X500Name("CN=another CA"))).getEncoded()))));

        assertThat(catchThrowableOfType(PemException.class, () -> verifierWith(onCrl)).reason())
                .isEqualTo("unhandled critical extension 1.3.6.1.4.1.55555.7.3");
        assertThat(catchThrowableOfType(PemException.class, () -> verifierWith(onEntry)).reason())
                .isEqualTo("an indirect CRL (certificateIssuer on the entry for serial a): not supported");
    }

    @Test
    void aShardsCrlCoversOnlyTheCertificatesThatNameItsDistributionPoint() throws Exception {
        X509Bundle inShard1 = clientAt(SHARD_1);
        X509Bundle inShard2 = clientAt(SHARD_2);
        Path shard1 = crlFile("shard-1.crl", pki.root(), Duration.ofMinutes(30), scope(SHARD_1, false, false),
                inShard1.getCertificate());
        // The newest CRL of the CA, but another shard's: it says nothing about shard 1's certificates
        Path shard2 = crlFile("shard-2.crl", pki.root(), Duration.ofMinutes(5), scope(SHARD_2, false, false));
        ClientCertificateVerifier v = verifierWith(shard1, shard2);

        assertThat(refusal(v, chain(inShard1))).contains("is revoked by the CRL of");
        assertThatCode(() -> v.verify(chain(inShard2))).doesNotThrowAnyException();
        assertThat(refusal(v, chain(pki.client(ORDERS)))).as("no cRLDistributionPoints: no shard's CRL covers it")
                .endsWith("for chain index 0 (a CRL for another distribution point)");
        assertThat(refusal(verifierWith(shard2), chain(inShard1)))
                .endsWith("for chain index 0 (a CRL for another distribution point)");
    }

    @Test
    void aCrlForCaCertificatesOnlyCoversNoLeafAndOneForEndEntitiesOnlyNoIntermediate() throws Exception {
        X509Certificate[] path = chain(viaIntermediate, intermediate);
        Path rootRevokingIntermediate = crlFile("root-full.crl", pki.root(), Duration.ofMinutes(30), b -> { },
                intermediate.getCertificate());
        Path rootForLeavesOnly = crlFile("root-users.crl", pki.root(), Duration.ofMinutes(5),
                scope(null, true, false));
        Path intermediateRevokingLeaf = crlFile("intermediate-full.crl", intermediate, Duration.ofMinutes(30),
                b -> { }, viaIntermediate.getCertificate());
        Path intermediateForCasOnly = crlFile("intermediate-cas.crl", intermediate, Duration.ofMinutes(5),
                scope(null, false, true));
        Path intermediateForLeavesOnly = crlFile("intermediate-users.crl", intermediate, Duration.ofMinutes(5),
                scope(null, true, false));
        Path rootForCasOnly = crlFile("root-cas.crl", pki.root(), Duration.ofMinutes(5), scope(null, false, true));

        assertThat(refusal(verifierWith(rootRevokingIntermediate, rootForLeavesOnly, intermediateForLeavesOnly),
                path)).contains("chain index 1 (serial");
        assertThat(refusal(verifierWith(rootForCasOnly, intermediateRevokingLeaf, intermediateForCasOnly), path))
                .contains("chain index 0 (serial");
        assertThat(refusal(verifierWith(rootForCasOnly, intermediateForCasOnly), path))
                .endsWith("for chain index 0 (a CRL for CA certificates only)");
        assertThat(refusal(verifierWith(rootForLeavesOnly, intermediateForLeavesOnly), path))
                .endsWith("for chain index 1 (a CRL for end-entity certificates only)");
        assertThatCode(() -> verifierWith(rootForCasOnly, intermediateForLeavesOnly).verify(path))
                .doesNotThrowAnyException();
    }

    @Test
    void anIssuerWhoseKeyUsageLacksCrlSignHasNoValidCrl() throws Exception {
        X509Bundle certSignOnly = TestPki.intermediate(pki.root(), "cert-sign-only CA",
                b -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign));
        X509Bundle both = TestPki.intermediate(pki.root(), "crl-sign CA",
                b -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign, CertificateBuilder.KeyUsage.cRLSign));
        Path rootCrl = file("root.crl", freshCrl(pki.root()));

        X509Bundle below = TestPki.clientOf(certSignOnly, ORDERS);
        assertThat(refusal(verifierWith(rootCrl, file("cert-sign-only.crl", freshCrl(certSignOnly))),
                chain(below, certSignOnly))).endsWith("for chain index 0 (its keyUsage lacks cRLSign)");
        X509Bundle belowBoth = TestPki.clientOf(both, ORDERS);
        assertThatCode(() -> verifierWith(rootCrl, file("crl-sign.crl", freshCrl(both)))
                .verify(chain(belowBoth, both))).doesNotThrowAnyException();
    }

    @Test
    void aCrlIssuedInTheFutureDoesNotCount() throws Exception {
        Path current = crlFile("current.crl", pki.root(), Duration.ofMinutes(30), b -> { }, direct.getCertificate());
        Path future = file("future.crl", TestPki.crl(pki.root(), now.plus(Duration.ofMinutes(10)),
                now.plus(Duration.ofHours(2))));

        assertThat(refusal(verifierWith(current, future), chain(direct))).contains("is revoked by the CRL of");
        assertThat(refusal(verifierWith(future), chain(direct)))
                .endsWith("for chain index 0 (a CRL not yet valid, thisUpdate "
                        + now.plus(Duration.ofMinutes(10)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS) + ")");
    }

    @Test
    void aCrlWithAWeakSignatureDoesNotCount() throws Exception {
        Path current = crlFile("current.crl", pki.root(), Duration.ofMinutes(30), b -> { }, direct.getCertificate());
        X500Principal rootName = pki.root().getCertificate().getSubjectX500Principal();
        Path sha1 = file("sha1.crl", TestPki.crl(rootName, pki.root().getKeyPair().getPrivate(), "SHA1withECDSA",
                now.minus(Duration.ofMinutes(5)), now.plus(Duration.ofHours(1)), b -> { }));

        assertThat(refusal(verifierWith(current, sha1), chain(direct))).contains("is revoked by the CRL of");
        assertThat(refusal(verifierWith(sha1), chain(direct)))
                .endsWith("for chain index 0 (a CRL with weak signature algorithm SHA1withECDSA)");
    }

    @Test
    void aCrlInTheIssuersNameSignedByAnotherKeySaysSo() throws Exception {
        Path forged = file("forged.crl", TestPki.crl(pki.root().getCertificate().getSubjectX500Principal(),
                TestPki.newP256Key().getPrivate(), "SHA256withECDSA", now.minus(Duration.ofMinutes(5)),
                now.plus(Duration.ofHours(1)), b -> { }));
        Path current = crlFile("current.crl", pki.root(), Duration.ofMinutes(30), b -> { }, direct.getCertificate());

        assertThat(refusal(verifierWith(forged), chain(direct)))
                .endsWith("for chain index 0 (a CRL signed by another key)");
        assertThat(refusal(verifierWith(current, forged), chain(direct))).contains("is revoked by the CRL of");
    }

    @Test
    void theDenyListNeedsNoCaAndMatchesSerialFingerprintOrSpkiPinAnywhereInTheChain() throws Exception {
        X509Certificate leaf = viaIntermediate.getCertificate();
        String serial = leaf.getSerialNumber().toString(16).replaceAll("(..)(?!$)", "$1:");
        String fingerprint = DenyListValues.hex(MessageDigest.getInstance("SHA-256").digest(leaf.getEncoded()));
        String pin = Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-256")
                .digest(intermediate.getCertificate().getPublicKey().getEncoded()));

        for (RevocationConfig denied : List.of(
                new RevocationConfig(List.of(serial.toUpperCase()), null, null),
                new RevocationConfig(null, List.of(fingerprint.replaceAll("(..)(?!$)", "$1:")), null),
                new RevocationConfig(null, null, List.of(pin)))) {
            ClientCertificateVerifier v = verifier(denied, new ArrayList<>());
            assertThat(rejection(v, chain(viaIntermediate, intermediate))).as(denied.toString())
                    .isEqualTo(HandshakeFailureReason.REVOKED);
            assertThatCode(() -> v.verify(chain(direct))).as(denied.toString()).doesNotThrowAnyException();
        }
    }

    @Test
    void crlsApplyPerTrustAnchorOnlyToChainsEndingThere() throws Exception {
        X509Bundle partnersRoot = TestPki.newRoot("partners root");
        X509Bundle partner = TestPki.clientOf(partnersRoot, ORDERS);
        Path clientsCrl = file("clients.crl", freshCrl(pki.root(), direct.getCertificate()));
        Clock clock = Clock.fixed(now, ZoneOffset.UTC);
        RevocationChecker checker = RevocationChecker.load(Map.of(
                "clients", new TrustAnchorConfig(pki.caPem(), List.of(clientsCrl), null, null),
                "partners", new TrustAnchorConfig(pki.caPem())), RevocationConfig.NONE, (i, n) -> { }, clock);
        X509Certificate root = pki.root().getCertificate();
        ClientCertificateVerifier v = new ClientCertificateVerifier(List.of(root, partnersRoot.getCertificate()),
                Map.of(root, "clients", partnersRoot.getCertificate(), "partners"), checker, clock);

        assertThat(rejection(v, chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
        assertThatCode(() -> v.verify(chain(partner))).as("the partners anchor has no CRLs")
                .doesNotThrowAnyException();
    }

    @Test
    void pkixFailuresKeepTheirOwnReasonWithRevocationOn() throws Exception {
        Path crl = file("root.crl", freshCrl(pki.root()));
        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, crl), new ArrayList<>());

        assertThat(rejection(v, chain(TestPki.clientOfAnotherRoot(ORDERS)))).isEqualTo(HandshakeFailureReason.UNKNOWN_CA);
        assertThat(rejection(v, chain(pki.expiredClient(ORDERS)))).isEqualTo(HandshakeFailureReason.EXPIRED);
    }
}
