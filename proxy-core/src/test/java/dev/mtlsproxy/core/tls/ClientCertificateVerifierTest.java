package dev.mtlsproxy.core.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.mtlsproxy.config.IpRange;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.math.BigInteger;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertPathValidatorException.BasicReason;
import java.security.cert.CertificateException;
import java.security.cert.PKIXReason;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;
import javax.net.ssl.SSLEngine;
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
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Client chains as a client would send them, judged at a fixed instant. Validity failures come from moving the
 * clock, not from minting odd certificates, so each test changes exactly one thing.
 */
class ClientCertificateVerifierTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static Instant now;
    static X509Bundle intermediate;

    @BeforeAll
    static void mint() throws Exception {
        pki = TestPki.create(dir);
        now = Instant.now();
        intermediate = ca("CN=test intermediate CA,O=mtls-proxy tests", pki.root(), b -> b);
    }

    // ---- accepted ----------------------------------------------------------------------------------------------

    @Test
    void leafIssuedByTheTrustedRootPasses() {
        assertThatCode(() -> verifierAt(now).verify(chain(pki.client(ORDERS)))).doesNotThrowAnyException();
    }

    @Test
    void leafViaAnIntermediatePassesWhenTheClientSendsTheIntermediate() throws Exception {
        X509Bundle leaf = leafIssuedBy(intermediate, b -> b.addExtendedKeyUsageClientAuth());

        assertThatCode(() -> verifierAt(now).verify(chain(leaf, intermediate))).doesNotThrowAnyException();
    }

    @Test
    void clientAppendingTheRootItselfPasses() throws Exception {
        X509Bundle leaf = leafIssuedBy(intermediate, b -> b.addExtendedKeyUsageClientAuth());

        assertThatCode(() -> verifierAt(now).verify(chain(pki.client(ORDERS), pki.root())))
                .doesNotThrowAnyException();
        assertThatCode(() -> verifierAt(now).verify(chain(leaf, intermediate, pki.root())))
                .doesNotThrowAnyException();
    }

    @Test
    void aChainSentOutOfOrderWithADuplicateAndAStrangerPassesAsThePathItHolds() throws Exception {
        List<X509Bundle> cas = intermediates(ClientCertificateVerifier.MAX_CHAIN_LENGTH - 1);
        X509Bundle leaf = leafIssuedBy(cas.get(cas.size() - 1), b -> b.addExtendedKeyUsageClientAuth());
        X509Bundle stranger = TestPki.clientOfAnotherRoot("spiffe://else.test/x");

        // RFC 8446 4.4.2: extraneous certificates and any order after the leaf; only the path counts to the limit.
        X509Certificate[] sent = chain(leaf, cas.get(1), stranger, cas.get(3), cas.get(0), pki.root(), cas.get(2),
                cas.get(1));
        assertThatCode(() -> verifierAt(now).verify(sent)).doesNotThrowAnyException();
        assertThat(new TrustAnchors(java.util.Map.of(pki.root().getCertificate(), TestPki.ANCHOR)).anchorOf(sent))
                .isEqualTo(TestPki.ANCHOR);
    }

    @Test
    void certificatesNamedLikeTheIssuerAreTriedOnlyAsFarAsTheSignatureCheckBudget() throws Exception {
        X509Bundle issuing = TestPki.intermediate(pki.root(), "issuing CA");
        X509Bundle leaf = leafIssuedBy(issuing, b -> b.addExtendedKeyUsageClientAuth());
        X509Bundle[] sameName = new X509Bundle[TrustAnchors.MAX_SIGNATURE_CHECKS + 1];
        for (int i = 0; i < sameName.length; i++) {
            sameName[i] = TestPki.intermediate(pki.root(), "issuing CA");
        }

        // A CA renewed with a new key, its predecessor sent first: one signature check finds the issuer.
        assertThatCode(() -> verifierAt(now).verify(chain(leaf, sameName[0], issuing))).doesNotThrowAnyException();
        // A client sending more of one name than the budget buys no more checks: unauthenticated, it would
        // otherwise make each handshake cost dozens of signature checks. The first of the name goes to PKIX.
        X509Bundle[] decoysFirst = new X509Bundle[sameName.length + 2];
        decoysFirst[0] = leaf;
        System.arraycopy(sameName, 0, decoysFirst, 1, sameName.length);
        decoysFirst[decoysFirst.length - 1] = issuing;
        assertThatThrownBy(() -> verifierAt(now).verify(chain(decoysFirst)))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.UNKNOWN_CA));
    }

    @Test
    void aPathSignedWithSha1OrHoldingAShortRsaKeyIsWeakAlgorithmOnceOurCaVouchesForIt() throws Exception {
        KeyPair short1024 = rsa(1024);
        KeyPair enough2048 = rsa(2048);
        X509Bundle rsa1024 = leafIssuedBy(pki.root(), b -> b.addExtendedKeyUsageClientAuth().keyPair(short1024));
        X509Bundle rsa2048 = leafIssuedBy(pki.root(), b -> b.addExtendedKeyUsageClientAuth().keyPair(enough2048));
        X509Certificate sha1 = leafSignedWith(pki.root(), "SHA1withECDSA");
        X509Certificate sha256 = leafSignedWith(pki.root(), "SHA256withECDSA");

        assertRefused(chain(rsa1024), HandshakeFailureReason.WEAK_ALGORITHM, "RSA key of 1024 bits");
        assertRefused(new X509Certificate[] {sha1}, HandshakeFailureReason.WEAK_ALGORITHM,
                "signature algorithm SHA1withECDSA");
        assertThatCode(() -> verifierAt(now).verify(chain(rsa2048))).doesNotThrowAnyException();
        assertThatCode(() -> verifierAt(now).verify(new X509Certificate[] {sha256})).doesNotThrowAnyException();
        // Another CA's chain is unknown_ca, whatever it is signed with: strength is judged on paths we accept.
        X509Bundle elsewhere = leafIssuedBy(TestPki.newRoot("elsewhere"),
                b -> b.addExtendedKeyUsageClientAuth().keyPair(short1024));
        assertRefused(chain(elsewhere), HandshakeFailureReason.UNKNOWN_CA, "");
    }

    private static void assertRefused(X509Certificate[] sent, HandshakeFailureReason reason, String detail) {
        assertThatThrownBy(() -> verifierAt(now).verify(sent))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(reason))
                .hasMessageContaining(detail);
    }

    private static KeyPair rsa(int bits) throws Exception {
        java.security.KeyPairGenerator generator = java.security.KeyPairGenerator.getInstance("RSA");
        generator.initialize(bits);
        return generator.generateKeyPair();
    }

    /** A client leaf for ORDERS signed by {@code issuer} with the given signature algorithm. */
    private static X509Certificate leafSignedWith(X509Bundle issuer, String algorithm) throws Exception {
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer.getCertificate(),
                BigInteger.valueOf(now.toEpochMilli()), Date.from(now.minus(Duration.ofHours(1))),
                Date.from(now.plus(Duration.ofHours(12))), new X500Principal("CN=orders,O=mtls-proxy tests"),
                TestPki.newP256Key().getPublic())
                .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth))
                .addExtension(Extension.subjectAlternativeName, false,
                        new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, ORDERS)));
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder(algorithm).build(issuer.getKeyPair().getPrivate())));
    }

    @Test
    void moreCertificatesThanAClientMaySendIsChainTooLongWhateverThePath() throws Exception {
        X509Bundle[] sent = new X509Bundle[ClientCertificateVerifier.MAX_PRESENTED + 1];
        sent[0] = pki.client(ORDERS);
        java.util.Arrays.fill(sent, 1, sent.length, intermediate);

        assertThatThrownBy(() -> verifierAt(now).verify(chain(sent)))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.CHAIN_TOO_LONG))
                .hasMessage("chain_too_long: client sent 11 certificates, at most 10 accepted");
    }

    @Test
    void aDnsNameConstraintCheckLeavesTheLeafsNamesAsTheCertificateHasThem() throws Exception {
        // The JDK checks the CN of a leaf without DNS SANs against DNS constraints by adding it to the SANs of the
        // certificate object it checks; the identity, XFCC and log must not see a DNS name the leaf does not hold.
        X509Bundle partnerRoot = TestPki.dnsConstrainedRoot("partner DNS root", "partner.test");
        X509Bundle leaf = TestPki.issue(partnerRoot, "spiffe://partner.test/sa/agent",
                b -> b.subject("CN=agent.partner.test,O=partner"));
        X509Certificate[] sent = chain(leaf);

        VerifiedChain verified = verifierAt(now, partnerRoot).verified(sent);

        assertThat(verified.identity().dnsSans()).isEmpty();
        assertThat(sent[0].getSubjectAlternativeNames())
                .containsExactly(List.of(6, "spiffe://partner.test/sa/agent"));
    }

    @Test
    void twoCasWhoseNameConstraintsPermitDisjointNamesAreRefusedForThemWithTheCasNamed() throws Exception {
        // RFC 5280 6.1.4 (g): below both, no URI is permitted at all. JDK 17's PKIX throws a RuntimeException on such a
        // path rather than refuse it; the handshake log shows the deepest cause's message as its detail.
        X509Bundle partner = TestPki.nameConstrainedIntermediate(pki.root(), "partner CA", "partner.test");
        X509Bundle prod = TestPki.nameConstrainedIntermediate(partner, "prod CA", "prod.test");
        String why = "the name constraints of CN=prod CA,O=mtls-proxy tests and CN=partner CA,O=mtls-proxy tests"
                + " permit no name of one type in common";

        ClientCertificateRejectedException refused = catchThrowableOfType(ClientCertificateRejectedException.class,
                () -> verifierAt(now).verify(chain(TestPki.issue(prod, ORDERS, b -> b), prod, partner)));

        assertThat(refused.reason()).isEqualTo(HandshakeFailureReason.NAME_CONSTRAINTS);
        assertThat(refused).hasMessage("name_constraints: " + why).hasRootCauseMessage(why);
    }

    @Test
    void leafWhoseKeyUsageForbidsSignaturesIsBadEkuWithoutAHandshake() throws Exception {
        // BoringSSL refuses it in the handshake (its CertificateVerify is a signature); explain and test verify the
        // chain with no handshake, and must say what the handshake would.
        X509Bundle leaf = leafIssuedBy(pki.root(), b -> b.addExtendedKeyUsageClientAuth()
                .setKeyUsage(true, CertificateBuilder.KeyUsage.keyEncipherment));
        X509Bundle signing = leafIssuedBy(pki.root(), b -> b.addExtendedKeyUsageClientAuth()
                .setKeyUsage(true, CertificateBuilder.KeyUsage.digitalSignature));

        assertRefused(chain(leaf), HandshakeFailureReason.BAD_EKU, "the key usage of the leaf lacks digitalSignature");
        assertThatCode(() -> verifierAt(now).verify(chain(signing))).doesNotThrowAnyException();
    }

    @Test
    void aLeafWhoseNamesCannotBeReadIsRefusedRatherThanServedWithoutThem() throws Exception {
        X509Bundle leaf = TestPki.clientWithRawUris(pki.root(), ORDERS, "https://orders.prod.test/a b");

        assertRefused(chain(leaf), HandshakeFailureReason.OTHER,
                "leaf: the subject alternative names cannot be read");
    }

    @Test
    void aLeafWithAMalformedNameIsRefusedNamingTheTypeOfName() throws Exception {
        X509Bundle nul = TestPki.clientWithRawSans(pki.root(), GeneralName.dNSName, "admin.prod.test\0.evil.test");
        X509Bundle quote = TestPki.clientWithRawSans(pki.root(), GeneralName.dNSName, "admin.prod.test\".evil.test");
        X509Bundle accented = TestPki.clientWithRawSans(pki.root(), GeneralName.rfc822Name, "op\u00e9@prod.test");
        X509Bundle control = TestPki.clientWithRawSans(pki.root(), GeneralName.uniformResourceIdentifier,
                "spiffe://prod.test/ns/ops\u0007");

        assertRefused(chain(nul), HandshakeFailureReason.OTHER, "leaf: the subject alternative names cannot be read:"
                + " a dNSName is malformed");
        assertRefused(chain(quote), HandshakeFailureReason.OTHER, "a dNSName is malformed");
        assertRefused(chain(accented), HandshakeFailureReason.OTHER, "a rfc822Name is malformed");
        assertRefused(chain(control), HandshakeFailureReason.OTHER, "a uniformResourceIdentifier is malformed");
    }

    @Test
    void aCaExcludedFromAnIpv4RangeCannotGrantItsAddressesWrittenAsIpv6() throws Exception {
        X509Bundle notTen = TestPki.ipExcludedIntermediate(pki.root(), "not 10/8 CA", "10.0.0.0/8");
        byte[] mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xff, (byte) 0xff, 10, 1, 2, 3};
        X509Bundle plain = TestPki.issue(notTen, ORDERS, b -> b.addSanIpAddress("10.1.2.3"));
        java.net.InetAddress ipv6 = java.net.Inet6Address.getByAddress(null, mapped, -1);
        X509Bundle asIpv6 = TestPki.issue(notTen, ORDERS, b -> b.addSanIpAddress(ipv6));

        assertRefused(chain(plain, notTen), HandshakeFailureReason.NAME_CONSTRAINTS, "");
        // The JDK's constraint check, like Go's, judges ::ffff:10.1.2.3 as the IPv6 address it is, outside the
        // excluded IPv4 range; the JDK's SAN text would have made it 10.1.2.3, inside an ipSan: 10.0.0.0/8 grant.
        List<String> ips = verifierAt(now).verified(chain(asIpv6, notTen)).identity().ipSans();
        assertThat(ips).containsExactly("0:0:0:0:0:ffff:a01:203");
        assertThat(IpRange.parse("10.0.0.0/8").contains(IpRange.literal(ips.get(0)))).isFalse();
        assertThat(IpRange.parse("::ffff:10.0.0.0/104").contains(IpRange.literal(ips.get(0)))).isTrue();
    }

    @Test
    void leafWithoutAnyExtendedKeyUsagePasses() throws Exception {
        X509Bundle leaf = new CertificateBuilder()
                .subject("CN=legacy-batch,O=mtls-proxy tests")
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(1)))
                .ecp256()
                .buildIssuedBy(pki.root());
        assertThat(leaf.getCertificate().getExtendedKeyUsage()).isNull();

        assertThatCode(() -> verifierAt(now).verify(chain(leaf))).doesNotThrowAnyException();
    }

    @Test
    void anyExtendedKeyUsageCountsAsClientAuth() throws Exception {
        X509Bundle leaf = leafIssuedBy(pki.root(), b -> b.addExtendedKeyUsage("2.5.29.37.0"));

        assertThatCode(() -> verifierAt(now).verify(chain(leaf))).doesNotThrowAnyException();
    }

    @Test
    void chainOfExactlyMaxLengthPasses() throws Exception {
        List<X509Bundle> cas = intermediates(ClientCertificateVerifier.MAX_CHAIN_LENGTH - 1);
        X509Bundle leaf = leafIssuedBy(cas.get(cas.size() - 1), b -> b.addExtendedKeyUsageClientAuth());

        assertThatCode(() -> verifierAt(now).verify(leafFirst(leaf, cas))).doesNotThrowAnyException();
    }

    // ---- refused -----------------------------------------------------------------------------------------------

    @Test
    void emptyOrMissingChainIsNoCertificate() {
        assertThat(rejection(new X509Certificate[0], now)).isEqualTo(HandshakeFailureReason.NO_CERTIFICATE);
        assertThat(rejection(null, now)).isEqualTo(HandshakeFailureReason.NO_CERTIFICATE);
    }

    @Test
    void leafViaAnIntermediateIsUnknownCaWhenTheClientSendsOnlyTheLeaf() throws Exception {
        X509Bundle leaf = leafIssuedBy(intermediate, b -> b.addExtendedKeyUsageClientAuth());

        assertThat(rejection(chain(leaf), now)).isEqualTo(HandshakeFailureReason.UNKNOWN_CA);
    }

    @Test
    void leafFromAnotherRootIsUnknownCa() {
        assertThat(rejection(chain(TestPki.clientOfAnotherRoot(ORDERS)), now))
                .isEqualTo(HandshakeFailureReason.UNKNOWN_CA);
    }

    @Test
    void leafFromARogueRootWithTheTrustedRootsNameIsRefused() throws Exception {
        X509Bundle rogueRoot = new CertificateBuilder()
                .subject(pki.root().getCertificate().getSubjectX500Principal())
                .setIsCertificateAuthority(true)
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofDays(1)))
                .ecp256()
                .buildSelfSigned();
        X509Bundle leaf = leafIssuedBy(rogueRoot, b -> b.addExtendedKeyUsageClientAuth());

        // Same issuer name as a trusted CA, wrong key: the signature check fails. A forgery does not chain to our
        // CA, so it is counted as unknown_ca; the cause keeps the PKIX reason for the log.
        assertThatThrownBy(() -> verifierAt(now).verify(chain(leaf, pki.root())))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.UNKNOWN_CA))
                .cause()
                .isInstanceOfSatisfying(CertPathValidatorException.class,
                        e -> assertThat(e.getReason()).isEqualTo(BasicReason.INVALID_SIGNATURE));
    }

    @Test
    void chainLongerThanTheLimitIsRefusedBeforeAnySignatureCheck() throws Exception {
        List<X509Bundle> cas = intermediates(ClientCertificateVerifier.MAX_CHAIN_LENGTH);
        X509Bundle leaf = leafIssuedBy(cas.get(cas.size() - 1), b -> b.addExtendedKeyUsageClientAuth());
        X509Certificate[] chain = leafFirst(leaf, cas);
        assertThat(chain).hasSize(ClientCertificateVerifier.MAX_CHAIN_LENGTH + 1);

        assertThatThrownBy(() -> verifierAt(now).verify(chain))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.CHAIN_TOO_LONG))
                .hasMessage("chain_too_long: client sent 6 certificates below the root, at most 5 accepted")
                .hasNoCause();
    }

    @Test
    void intermediateBeyondTheRootsPathLengthIsChainTooLong() throws Exception {
        X509Bundle constrained = ca("CN=constrained intermediate", pki.root(),
                b -> b.setPathLengthConstraint(OptionalInt.of(0)));
        X509Bundle below = ca("CN=intermediate below a pathLen 0 CA", constrained, b -> b);
        X509Bundle leaf = leafIssuedBy(below, b -> b.addExtendedKeyUsageClientAuth());

        assertThat(rejection(chain(leaf, below, constrained), now)).isEqualTo(HandshakeFailureReason.CHAIN_TOO_LONG);
    }

    @Test
    void leafPastItsNotAfterIsExpired() {
        X509Bundle leaf = pki.client(ORDERS); // valid until about now + 12h

        assertThat(rejection(chain(leaf), now.plus(Duration.ofHours(13)))).isEqualTo(HandshakeFailureReason.EXPIRED);
    }

    @Test
    void leafBeforeItsNotBeforeIsNotYetValid() {
        X509Bundle leaf = pki.client(ORDERS); // valid from about now - 1h

        assertThat(rejection(chain(leaf), now.minus(Duration.ofHours(2))))
                .isEqualTo(HandshakeFailureReason.NOT_YET_VALID);
    }

    @Test
    void theClockIsTheOnlyTimeSourceForValidity() {
        X509Bundle expiredByTheWallClock = pki.expiredClient(ORDERS);

        assertThat(rejection(chain(expiredByTheWallClock), now)).isEqualTo(HandshakeFailureReason.EXPIRED);
        assertThatCode(() -> verifierAt(now.minus(Duration.ofHours(36))).verify(chain(expiredByTheWallClock)))
                .doesNotThrowAnyException();
    }

    @Test
    void expiredIntermediateIsExpiredEvenWithAValidLeaf() throws Exception {
        X509Bundle shortLived = ca("CN=short-lived intermediate", pki.root(),
                b -> b.notAfter(now.plus(Duration.ofHours(2))));
        X509Bundle leaf = leafIssuedBy(shortLived, b -> b.addExtendedKeyUsageClientAuth()
                .notAfter(now.plus(Duration.ofHours(6))));

        assertThat(rejection(chain(leaf, shortLived), now.plus(Duration.ofHours(3))))
                .isEqualTo(HandshakeFailureReason.EXPIRED);
    }

    @Test
    void leafWithServerAuthOnlyIsBadEku() {
        assertThat(rejection(chain(pki.serverOnlyEkuClient(ORDERS)), now)).isEqualTo(HandshakeFailureReason.BAD_EKU);
    }

    @Test
    void intermediateWhoseEkuExcludesClientAuthIsBadEku() throws Exception {
        X509Bundle serverOnlyCa = ca("CN=server-only intermediate", pki.root(),
                b -> b.addExtendedKeyUsageServerAuth());
        X509Bundle leaf = leafIssuedBy(serverOnlyCa, b -> b.addExtendedKeyUsageClientAuth());

        assertThat(rejection(chain(leaf, serverOnlyCa), now)).isEqualTo(HandshakeFailureReason.BAD_EKU);
    }

    @Test
    void leafSigningAnotherLeafIsRefused() throws Exception {
        // An end-entity certificate is not a CA: whatever it signs must not chain to the root.
        X509Bundle endEntity = pki.client(ORDERS);
        X509Bundle forged = leafIssuedBy(endEntity, b -> b.addExtendedKeyUsageClientAuth());

        assertThatThrownBy(() -> verifierAt(now).verify(chain(forged, endEntity)))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.UNKNOWN_CA))
                .cause()
                .isInstanceOfSatisfying(CertPathValidatorException.class,
                        e -> assertThat(e.getReason()).isEqualTo(PKIXReason.NOT_CA_CERT));
    }

    // ---- the trusted CA's own limits ----------------------------------------------------------------------------

    @Test
    void aRootAllowingNoIntermediatesRefusesAChainThroughOne() throws Exception {
        X509Bundle root = new CertificateBuilder()
                .subject("CN=root allowing no intermediates")
                .setIsCertificateAuthority(true)
                .setPathLengthConstraint(OptionalInt.of(0))
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofDays(1)))
                .ecp256()
                .buildSelfSigned();
        X509Bundle below = ca("CN=intermediate below a pathLen 0 root", root, b -> b);
        X509Bundle viaIntermediate = leafIssuedBy(below, b -> b.addExtendedKeyUsageClientAuth());
        X509Bundle direct = leafIssuedBy(root, b -> b.addExtendedKeyUsageClientAuth());

        assertThatCode(() -> verifierAt(now, root).verify(chain(direct))).doesNotThrowAnyException();
        assertThat(rejection(verifierAt(now, root), chain(viaIntermediate, below)))
                .isEqualTo(HandshakeFailureReason.CHAIN_TOO_LONG);
    }

    @Test
    void aPartnerRootConstrainedToItsDomainCannotVouchForOurs() {
        X509Bundle partnerRoot = TestPki.nameConstrainedRoot("partner root", "partner.test");
        X509Bundle theirs = TestPki.issue(partnerRoot, "spiffe://partner.test/ns/billing/sa/api", b -> b);
        X509Bundle ours = TestPki.issue(partnerRoot, ORDERS, b -> b);

        assertThatCode(() -> verifierAt(now, partnerRoot).verify(chain(theirs))).doesNotThrowAnyException();
        ClientCertificateRejectedException rejected = catchThrowableOfType(ClientCertificateRejectedException.class,
                () -> verifierAt(now, partnerRoot).verify(chain(ours)));
        assertThat(rejected).as("a name outside the CA's constraints was accepted").isNotNull();
        assertThat(rejected.reason()).isEqualTo(HandshakeFailureReason.NAME_CONSTRAINTS);
        assertThat(rejected.getMessage()).startsWith("name_constraints: ").contains("INVALID_NAME");
    }

    @Test
    void anExpiredRootFailsEvenAChainThatIsOtherwiseValidAndAlreadyVerified() throws Exception {
        X509Bundle shortLivedRoot = new CertificateBuilder()
                .subject("CN=short-lived root")
                .setIsCertificateAuthority(true)
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(2)))
                .ecp256()
                .buildSelfSigned();
        X509Bundle leaf = leafIssuedBy(shortLivedRoot, b -> b.addExtendedKeyUsageClientAuth()
                .notAfter(now.plus(Duration.ofHours(6))));
        MutableClock clock = new MutableClock(now);
        ClientCertificateVerifier verifier = new ClientCertificateVerifier(List.of(shortLivedRoot.getCertificate()),
                clock);
        verifier.verify(chain(leaf));

        clock.instant = now.plus(Duration.ofHours(3));

        assertThat(rejection(verifier, chain(leaf))).as("judged again although the chain is remembered")
                .isEqualTo(HandshakeFailureReason.EXPIRED);
        assertThat(rejection(verifierAt(now.plus(Duration.ofHours(3)), shortLivedRoot), chain(leaf)))
                .isEqualTo(HandshakeFailureReason.EXPIRED);
    }

    @Test
    void aCaReissuedToFixItsUsageStillAcceptsItsChainsWhileTheFaultyCopyIsInTheBundle() throws Exception {
        KeyPair key = TestPki.newP256Key();
        X509Bundle faulty = selfSignedCa("CN=reissued root", key, true);
        X509Bundle fixed = selfSignedCa("CN=reissued root", key, false);

        // Most CAs name only their key in a leaf's authority key identifier, not their certificate's serial: the
        // leaf does not say which of the two certificates issued it.
        X509Certificate leaf = leafNamingOnlyTheIssuerKey(fixed);

        // Same name, same key, same dates: PKIX takes whichever it meets first, in hash order. Enough fresh
        // verifiers meet both orders; each must fall back from the faulty copy to the fixed one.
        for (int i = 0; i < 20; i++) {
            ClientCertificateVerifier verifier = new ClientCertificateVerifier(
                    List.of(faulty.getCertificate(), fixed.getCertificate()), Clock.fixed(now, ZoneOffset.UTC));
            assertThatCode(() -> verifier.verify(new X509Certificate[] {leaf})).doesNotThrowAnyException();
        }
        assertThat(rejection(verifierAt(now, faulty), new X509Certificate[] {leaf})).as("the faulty copy alone")
                .isEqualTo(HandshakeFailureReason.BAD_EKU);
    }

    @Test
    void aRootWhoseEkuExcludesClientAuthIsBadEku() throws Exception {
        X509Bundle serverOnlyRoot = new CertificateBuilder()
                .subject("CN=server-only root")
                .setIsCertificateAuthority(true)
                .addExtendedKeyUsageServerAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofDays(1)))
                .ecp256()
                .buildSelfSigned();
        X509Bundle leaf = leafIssuedBy(serverOnlyRoot, b -> b.addExtendedKeyUsageClientAuth());

        assertThat(rejection(verifierAt(now, serverOnlyRoot), chain(leaf))).isEqualTo(HandshakeFailureReason.BAD_EKU);
    }

    // ---- the TrustManager face ---------------------------------------------------------------------------------

    @Test
    void trustManagerEntryPointsRejectWithTheClassifiedException() {
        ClientCertificateVerifier verifier = verifierAt(now);
        X509Certificate[] expired = chain(pki.expiredClient(ORDERS));

        assertThatThrownBy(() -> verifier.checkClientTrusted(expired, "ECDHE_ECDSA"))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.EXPIRED));
        assertThatThrownBy(() -> verifier.checkClientTrusted(expired, "ECDHE_ECDSA", (SSLEngine) null))
                .isInstanceOfSatisfying(ClientCertificateRejectedException.class,
                        e -> assertThat(e.reason()).isEqualTo(HandshakeFailureReason.EXPIRED));
    }

    @Test
    void itNeverVouchesForAServer() {
        ClientCertificateVerifier verifier = verifierAt(now);

        assertThatThrownBy(() -> verifier.checkServerTrusted(chain(pki.client(ORDERS)), "ECDHE_ECDSA"))
                .isExactlyInstanceOf(CertificateException.class);
    }

    @Test
    void acceptedIssuersAreTheConfiguredCasAndCannotBeModified() {
        ClientCertificateVerifier verifier = verifierAt(now);

        X509Certificate[] issuers = verifier.getAcceptedIssuers();
        issuers[0] = null;

        assertThat(verifier.getAcceptedIssuers()).containsExactly(pki.root().getCertificate());
    }

    @Test
    void noTrustedCaIsAConstructionError() {
        assertThatThrownBy(() -> new ClientCertificateVerifier(List.of(), Clock.systemUTC()))
                .isInstanceOf(IllegalArgumentException.class);
    }

    // ---- fixtures ----------------------------------------------------------------------------------------------

    private static ClientCertificateVerifier verifierAt(Instant instant) {
        return new ClientCertificateVerifier(List.of(pki.root().getCertificate()), Clock.fixed(instant,
                ZoneOffset.UTC));
    }

    private static ClientCertificateVerifier verifierAt(Instant instant, X509Bundle root) {
        return new ClientCertificateVerifier(List.of(root.getCertificate()), Clock.fixed(instant, ZoneOffset.UTC));
    }

    private static HandshakeFailureReason rejection(X509Certificate[] chain, Instant at) {
        return rejection(verifierAt(at), chain);
    }

    private static HandshakeFailureReason rejection(ClientCertificateVerifier verifier, X509Certificate[] chain) {
        ClientCertificateRejectedException rejected = catchThrowableOfType(ClientCertificateRejectedException.class,
                () -> verifier.verify(chain));
        assertThat(rejected).as("chain was accepted").isNotNull();
        return rejected.reason();
    }

    /** A clock a test moves: the verifier keeps what it verified, so time must pass for the same instance. */
    private static final class MutableClock extends Clock {
        Instant instant;

        MutableClock(Instant instant) {
            this.instant = instant;
        }

        @Override
        public Instant instant() {
            return instant;
        }

        @Override
        public java.time.ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }
    }

    private static X509Certificate[] chain(X509Bundle... certificates) {
        X509Certificate[] chain = new X509Certificate[certificates.length];
        for (int i = 0; i < certificates.length; i++) {
            chain[i] = certificates[i].getCertificate();
        }
        return chain;
    }

    private static X509Certificate[] leafFirst(X509Bundle leaf, List<X509Bundle> casFromRoot) {
        List<X509Bundle> ordered = new ArrayList<>();
        ordered.add(leaf);
        for (int i = casFromRoot.size() - 1; i >= 0; i--) {
            ordered.add(casFromRoot.get(i));
        }
        return chain(ordered.toArray(new X509Bundle[0]));
    }

    /** {@code count} CAs, each issued by the previous, the first by the root. */
    private static List<X509Bundle> intermediates(int count) throws Exception {
        List<X509Bundle> cas = new ArrayList<>();
        X509Bundle issuer = pki.root();
        for (int i = 0; i < count; i++) {
            issuer = ca("CN=intermediate " + i + ",O=mtls-proxy tests", issuer, b -> b);
            cas.add(issuer);
        }
        return cas;
    }

    private static X509Bundle ca(String subject, X509Bundle issuer,
            UnaryOperator<CertificateBuilder> customise) throws Exception {
        return customise.apply(new CertificateBuilder()
                        .subject(subject)
                        .setIsCertificateAuthority(true)
                        .notBefore(now.minus(Duration.ofHours(1)))
                        .notAfter(now.plus(Duration.ofDays(1)))
                        .ecp256())
                .buildIssuedBy(issuer);
    }

    /** A CA certificate for a given key: reissuing a CA keeps its name and key. */
    private static X509Bundle selfSignedCa(String subject, KeyPair key, boolean serverAuthOnly) throws Exception {
        X500Principal name = new X500Principal(subject);
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name,
                BigInteger.valueOf(System.nanoTime()), Date.from(now.minus(Duration.ofDays(30))),
                Date.from(now.plus(Duration.ofDays(365))), name, key.getPublic())
                .addExtension(Extension.basicConstraints, true, new BasicConstraints(true))
                .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
                .addExtension(Extension.subjectKeyIdentifier, false,
                        new JcaX509ExtensionUtils().createSubjectKeyIdentifier(key.getPublic()));
        if (serverAuthOnly) {
            builder.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
        }
        return X509Bundle.fromRootCertificateAuthority(new JcaX509CertificateConverter().getCertificate(
                builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(key.getPrivate()))), key);
    }

    /** A client leaf whose authority key identifier holds the issuer's key identifier only, as OpenSSL writes it. */
    private static X509Certificate leafNamingOnlyTheIssuerKey(X509Bundle issuer) throws Exception {
        KeyPair leafKey = TestPki.newP256Key();
        JcaX509ExtensionUtils extensions = new JcaX509ExtensionUtils();
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer.getCertificate(),
                BigInteger.valueOf(now.toEpochMilli()), Date.from(now.minus(Duration.ofHours(1))),
                Date.from(now.plus(Duration.ofHours(12))), new X500Principal("CN=orders,O=mtls-proxy tests"),
                leafKey.getPublic())
                .addExtension(Extension.authorityKeyIdentifier, false,
                        extensions.createAuthorityKeyIdentifier(issuer.getCertificate().getPublicKey()))
                .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth))
                .addExtension(Extension.subjectAlternativeName, false,
                        new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, ORDERS)));
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getKeyPair().getPrivate())));
    }

    private static X509Bundle leafIssuedBy(X509Bundle issuer,
            UnaryOperator<CertificateBuilder> customise) throws Exception {
        return customise.apply(new CertificateBuilder()
                        .subject("CN=orders,O=mtls-proxy tests")
                        .addSanUriName(ORDERS)
                        .notBefore(now.minus(Duration.ofHours(1)))
                        .notAfter(now.plus(Duration.ofHours(12)))
                        .ecp256())
                .buildIssuedBy(issuer);
    }
}
